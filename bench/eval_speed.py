"""Benchmark: time to evaluate 10,000 generated images (features + FID, KID, IS, precision/recall, classes).

    COUNTERFEIT_DATA=../shared/datasets python -m bench.eval_speed RUN_DIR [--data mnist]

Real-set features are computed first and cached (timed separately, as `real_features_s`); the figure that
counts is `generated_eval_s`: 10,000 generated images through the bundled classifier and every metric.
Writes bench/results/eval-speed.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from bench.harness import machine  # noqa: E402

from counterfeit.metrics.evaluate import FEATURE_METRICS, evaluate_images, real_features, real_features_cached  # noqa: E402
from counterfeit.metrics.features import load_extractor  # noqa: E402
from counterfeit.sampling import generate, load_generator  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run")
    p.add_argument("--data", default="mnist")
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--result", default=str(Path(__file__).resolve().parent / "results" / "eval-speed.json"))
    args = p.parse_args(argv)
    recipe, cfg, info = load_generator(args.run)
    fake = generate(recipe, args.n, seed=0)
    ex = load_extractor(args.data)
    cached = real_features_cached(ex, args.data)
    t = time.time()
    real_features(ex, args.data)
    real_s = time.time() - t
    t = time.time()
    res = evaluate_images(fake, args.data, FEATURE_METRICS, extractor=ex)
    total = time.time() - t
    out = {"command": f"COUNTERFEIT_DATA=../shared/datasets python -m bench.eval_speed {args.run} --data {args.data}",
           "machine": machine(), "n_generated": args.n, "generated_eval_s": round(total, 2),
           "real_features_s": round(real_s, 2), "real_features_were_cached": cached,
           "seconds_by_part": res["seconds"],
           "target_s": 30, "checkpoint": info["path"],
           "scores": {k: res[k] for k in FEATURE_METRICS}, "provenance": res["provenance"]}
    Path(args.result).write_text(json.dumps(out, indent=2))
    print(f"{args.n} generated images evaluated in {total:.1f} s (real features {real_s:.1f} s, cached after)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
