"""Benchmark: GAN (2014 MLP), DCGAN and VAE side by side on MNIST and Fashion-MNIST, same CPU budget, same metrics.

    COUNTERFEIT_DATA=../shared/datasets python -m bench.family --minutes 2 --only gan2014-mnist,dcgan-mnist,\
vae-mnist,vae-conv-mnist,gan2014-fashion,dcgan-fashion,vae-fashion
    COUNTERFEIT_DATA=../shared/datasets python -m bench.gan_vs_vae

Takes the runs that bench/family.py trained (bench/_work/family/PRESET) and its feature-space scores
(bench/results/family.json), and adds what contrasts implicit and explicit density models: a Parzen-window
log-likelihood for every model (the 2014 protocol: 10,000 samples in [0, 1], sigma chosen on 1,000 held-out images,
scored on the test set) and, for the VAEs, the ELBO on the test set (a bound the GANs cannot give). Parzen and ELBO
are both nats per test image, but they are different estimators: Parzen is a noisy estimate from samples, the ELBO a
lower bound of the Bernoulli-pixel likelihood; read them side by side, not as one ranking.
Writes bench/results/gan-vs-vae.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit.metrics.evaluate import evaluate_parzen  # noqa: E402
from counterfeit.sampling import generate, load_generator  # noqa: E402

SIDES = {"mnist": [("GAN (2014 MLP)", "gan2014-mnist"), ("DCGAN", "dcgan-mnist"), ("VAE (MLP)", "vae-mnist"),
                   ("VAE (conv)", "vae-conv-mnist")],
         "fashion-mnist": [("GAN (2014 MLP)", "gan2014-fashion"), ("DCGAN", "dcgan-fashion"), ("VAE (MLP)", "vae-fashion")]}
KEEP = ("fid", "kid", "is", "precision", "recall", "density", "coverage", "classes", "largest_class_share")


def main() -> int:
    family = json.loads((HERE / "results" / "family.json").read_text())["presets"]
    out = {"about": __doc__.split("\n\n", 2)[2].strip(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "COUNTERFEIT_DATA=../shared/datasets python -m bench.gan_vs_vae (after bench/family.py)",
           "datasets": {}}
    for data, models in SIDES.items():
        rows = []
        for label, preset in models:
            f = family.get(preset)
            if f is None or "scores" not in f:
                rows.append({"model": label, "preset": preset, "missing": "not in family.json; run bench/family.py"})
                continue
            recipe, cfg, info = load_generator(HERE / "_work" / "family" / preset)
            floats = generate(recipe, 10000, seed=0, as_uint8=False)
            t = time.time()
            pz = evaluate_parzen(floats, data)
            row = {"model": label, "preset": preset, "budget_minutes": f["budget_minutes"], "steps": f["steps"],
                   "epochs": f["epochs"], **{k: f["scores"][k] for k in KEEP if k in f["scores"]},
                   "fid_ci95": f.get("fid_ci95"), "parzen_nats": round(pz["mean"], 2), "parzen_se": round(pz["se"], 2),
                   "parzen_sigma": round(pz["sigma"], 4), "parzen_valid": pz["valid"], "parzen_s": round(time.time() - t, 1),
                   "elbo_nats": f.get("elbo"), "grid": f.get("grid")}
            rows.append(row)
            print(json.dumps(row), flush=True)
        out["datasets"][data] = rows
    (HERE / "results" / "gan-vs-vae.json").write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
