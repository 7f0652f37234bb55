"""Benchmark: how the bundled Fashion-MNIST classifier's precision/recall (k = 3) react to small changes of real images.

    COUNTERFEIT_DATA=../shared/datasets python -m bench.metric_sensitivity

10,000 real training images, perturbed, scored against the test split as if they were generated: a check that the
feature space reads detail (blur, noise, a grey background) and not only class. Results:
bench/results/metric-sensitivity.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit.data import load_data  # noqa: E402
from counterfeit.metrics.evaluate import real_features  # noqa: E402
from counterfeit.metrics.features import load_extractor  # noqa: E402
from counterfeit.metrics.prdc import prdc  # noqa: E402


def perturbations(x: torch.Tensor) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    cb = torch.ones(28, 28)
    cb[::2, ::2] = cb[1::2, 1::2] = -1
    blur = torch.tensor([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=torch.float).view(1, 1, 3, 3) / 16
    out = {"clean": x}
    for s in (2, 5, 10, 20):
        out[f"gaussian noise std {s}/255"] = x + s * torch.randn(x.shape, generator=g)
    for a in (3, 8):
        out[f"checkerboard amplitude {a}/255"] = x + a * cb
    out["3x3 binomial blur"] = F.conv2d(x, blur, padding=1)
    out["gamma 0.9"] = 255 * (x / 255) ** 0.9
    out["background (zero pixels) +5/255"] = torch.where(x < 1, x + 5, x)
    return out


def main() -> int:
    ex = load_extractor("fashion-mnist")
    rf, _ = real_features(ex, "fashion-mnist", "test")
    x = load_data("fashion-mnist", "train").x[torch.randperm(60000, generator=torch.Generator().manual_seed(0))[:10000]]
    rows = {}
    for name, xp in perturbations(x.float()).items():
        f, _ = ex(xp.clamp(0, 255).round().to(torch.uint8))
        r = prdc(rf, f)
        rows[name] = {k: round(r[k], 4) for k in ("precision", "recall", "density", "coverage")}
        print(f"{name:34s} " + "  ".join(f"{k} {v:.3f}" for k, v in rows[name].items()), flush=True)
    doc = {"about": __doc__.split("\n\n", 2)[2].strip(), "rows": rows, "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "COUNTERFEIT_DATA=../shared/datasets python -m bench.metric_sensitivity"}
    (HERE / "results" / "metric-sensitivity.json").write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
