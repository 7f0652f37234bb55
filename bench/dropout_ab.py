"""Benchmark: the two changes to the tutorial D of issue 16, each on and off, interleaved in one process.

    python -m bench.dropout_ab [--rounds 5] [--steps 5]

The hand-written bf16 channels_last joint step of bench/speed.py (tutorial DCGAN, batch 256) with:
  dropout   "16-bit" (four masks per 64-bit integer draw; tried and reverted: the README's main job collapsed on
            seed 0 with these masks, see speed.json quality_checks) or "fp32 uniforms" (nets/layers.Dropout as
            shipped: rand_like(x, float32) >= p);
  last D block  with ToContiguous before its LeakyReLU (NCHW order into the Flatten) or without it.
Variants alternate round by round, so a noisy machine slows them alike; the median per variant is the figure.
Results: bench/results/dropout-ab.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
from bench import speed  # noqa: E402
from bench.harness import machine  # noqa: E402

from counterfeit.nets import layers  # noqa: E402


fp32_uniform_dropout = layers.Dropout.forward


def sixteen_bit_dropout(self, x):
    """The rate p on a 2^-16 grid, the kept units scaled by exactly 1 / (1 - rate); words in x's memory order."""
    thr = round(self.p * 65536)
    if not self.training or thr == 0:
        return x
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1).view(torch.int16)[:n]
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        b, c, h, w = x.shape
        words = words.view(b, h, w, c).permute(0, 3, 1, 2)
    else:
        words = words.view(x.shape)
    return x * (words >= thr - 32768).to(x.dtype).mul_(65536 / (65536 - thr))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--result", default=str(HERE / "results" / "dropout-ab.json"))
    args = p.parse_args(argv)
    new_do, new_tc = layers.Dropout.forward, layers.ToContiguous.forward
    variants = {
        "16-bit dropout, ToContiguous": (sixteen_bit_dropout, new_tc),
        "16-bit dropout, no ToContiguous": (sixteen_bit_dropout, lambda self, x: x),
        "fp32-uniform dropout, ToContiguous (as shipped)": (fp32_uniform_dropout, new_tc),
        "fp32-uniform dropout, no ToContiguous (before)": (fp32_uniform_dropout, lambda self, x: x),
    }
    x = speed.mnist_batch(256)
    step = speed.eager_step("dcgan", {"bf16", "channels_last"}, x)
    for _ in range(5):
        step()
    times = {k: [] for k in variants}
    try:
        for r in range(args.rounds):
            for name, (do, tc) in variants.items():
                layers.Dropout.forward, layers.ToContiguous.forward = do, tc
                step()
                t = time.perf_counter()
                for _ in range(args.steps):
                    out = step()
                float(out[0])
                times[name].append(round((time.perf_counter() - t) / args.steps, 4))
            print(f"round {r + 1}: " + ", ".join(f"{k}: {v[-1] * 1e3:.0f} ms" for k, v in times.items()), flush=True)
    finally:
        layers.Dropout.forward, layers.ToContiguous.forward = new_do, new_tc
    before = statistics.median(times["fp32-uniform dropout, no ToContiguous (before)"])
    rows = {k: {"s_per_step": v, "median_s": statistics.median(v),
                "time_ratio_to_before": round(statistics.median(v) / before, 3)} for k, v in times.items()}
    doc = {"about": __doc__.split("\n\n", 2)[1].strip(), "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "command": "python -m bench.dropout_ab " + " ".join(argv or sys.argv[1:]),
           "rows": rows}
    Path(args.result).write_text(json.dumps(doc, indent=1) + "\n")
    for k, v in rows.items():
        print(f"{k:48s} median {v['median_s'] * 1e3:.1f} ms, {v['time_ratio_to_before']:.3f} of before")
    return 0


if __name__ == "__main__":
    sys.exit(main())
