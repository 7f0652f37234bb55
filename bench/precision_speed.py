"""Benchmark: steps per second of one DCGAN training step (D then G, non-saturating loss, Adam) in fp32 and under
bfloat16 autocast, for the Radford nets at 28x28 with and without the extra 3x3 blocks, measured in one run.

    python -m bench.precision_speed [--steps 60] [--threads 2]

Synthetic inputs (the data loader is not what is measured); the figures are ratios within one run: the machine is
shared and absolute rates move by 20% between runs. Results: bench/results/precision-speed.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit.nets.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_init_  # noqa: E402

CASES = [(32, 0, 0), (32, 1, 1), (32, 2, 1)]  # (width, depth_g, depth_d); fashion-fast is (32, 2, 1)


def steps_per_s(width: int, depth_g: int, depth_d: int, bf16: bool, steps: int, batch: int = 64) -> float:
    torch.manual_seed(0)
    G, D = DCGANGenerator(100, (1, 28, 28), width, depth=depth_g), DCGANDiscriminator((1, 28, 28), width, depth=depth_d)
    dcgan_init_(G), dcgan_init_(D)
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, 1, 28, 28) * 2 - 1

    def step():
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            fake = G(torch.randn(batch, 100))
            loss_d = F.softplus(-D(real).float()).mean() + F.softplus(D(fake.detach()).float()).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss_g = F.softplus(-D(G(torch.randn(batch, 100))).float()).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    for _ in range(5):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--result", default=str(HERE / "results" / "precision-speed.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for width, dg, dd in CASES:
        fp32 = steps_per_s(width, dg, dd, False, args.steps)
        bf16 = steps_per_s(width, dg, dd, True, args.steps)
        row = {"width": width, "depth_g": dg, "depth_d": dd, "fp32_steps_per_s": round(fp32, 2),
               "bf16_steps_per_s": round(bf16, 2), "bf16_speedup": round(bf16 / fp32, 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {"about": __doc__.split("\n\n", 2)[2].strip(), "batch": 64, "steps": args.steps, "threads": args.threads,
           "rows": rows, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": f"python -m bench.precision_speed --steps {args.steps} --threads {args.threads}"}
    Path(args.result).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
