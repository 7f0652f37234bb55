"""Diagnostic: does a conditional generator use its noise? Within-class pixel spread against real digits.

    counterfeit train cgan-mnist --out RUN --steps 1500 --set train.threads=1 --set train.parzen_monitor=false \
        [--set model.d_cond=projection]
    COUNTERFEIT_DATA=../shared/datasets python bench/cond_diversity.py RUN [RUN ...]

For each run: 100 samples per class (one label, 100 noise vectors), the per-pixel standard deviation across them
averaged over pixels and classes; the same for 100 real MNIST test digits per class; and precision/recall/FID of
5,000 samples on the bundled MNIST classifier. A generator that ignores z within a class has a small spread and
zero recall. Results: bench/results/cond-diversity.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gan2014_mnist import machine  # noqa: E402

from counterfeit.data import load_data  # noqa: E402
from counterfeit.metrics.evaluate import evaluate_images  # noqa: E402
from counterfeit.sampling import generate, load_generator  # noqa: E402


def within_class_std(x: torch.Tensor, y: torch.Tensor, per_class: int = 100) -> float:
    return sum(x[y == c][:per_class].float().std(0).mean().item() for c in range(10)) / 10


def main(argv=None) -> int:
    runs = (argv if argv is not None else sys.argv[1:])
    test = load_data("mnist", "test")
    doc = {"about": __doc__.split("\n\n", 2)[2].strip(), "real_within_class_std": round(within_class_std(test.x, test.y), 2),
           "runs": {}, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    for run in runs:
        recipe, cfg, info = load_generator(run)
        labels = torch.arange(1000) // 100
        spread = within_class_std(generate(recipe, 1000, seed=1, labels=labels), labels)
        r = evaluate_images(generate(recipe, 5000, seed=2), "mnist", ["pr", "fid"], seed=0)
        doc["runs"][run] = {"step": info["step"], "d_cond": cfg.model.d_cond, "within_class_std": round(spread, 2),
                            "precision": r["pr"]["precision"], "recall": r["pr"]["recall"], "fid": round(r["fid"]["fid"], 2)}
        print(json.dumps(doc["runs"][run]), flush=True)
    doc["command"] = "COUNTERFEIT_DATA=../shared/datasets python bench/cond_diversity.py " + " ".join(runs)
    (HERE / "results" / "cond-diversity.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
