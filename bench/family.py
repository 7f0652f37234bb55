"""Benchmark: train each GAN-family preset for the same wall-clock CPU budget, then score it offline.

    COUNTERFEIT_DATA=../shared/datasets python -m bench.family [--minutes 3] [--only dcgan-fashion,vae-fashion]

Every preset runs as shipped (its own batch, optimizer, k, schedule), cut by `train.max_minutes`; the in-training
Parzen monitor is off so no preset pays for it. Then 10,000 samples (from the EMA generator where the preset keeps
one) are scored against the test split with the bundled classifier of that dataset: FID (bootstrap 95% CI), KID,
IS, precision/recall/density/coverage (k = 3) and classes covered. VAEs also get their ELBO on the test set;
conditional presets their classification accuracy score (beside the same classifier trained on as many real images).
A 10x10 grid per preset goes to bench/results/family/PRESET.png (conditional presets: one row per class).
Results merge into bench/results/family.json (one entry per preset, each with its own budget and command), so
presets can be (re)run a few at a time. CIFAR-10 presets are listed as not run when CIFAR-10 is not on disk.
`real:mnist` and `real:fashion-mnist` score 10,000 real training images the same way: what a perfect generator
would get against the test split with this feature space (precision and recall stay below 1 for real data too).
Sanity rows `sanity:KIND:DATA` score garbage the same way: uniform noise, one constant grey image, one real training
image repeated, and the real images blurred (Gaussian, sigma 1.5 px). `robustness` then says, per dataset and
metric, whether every sanity row scores worse than the real row; a metric that rates garbage at or above real
images is marked not robust, and carries no target.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit import config  # noqa: E402
from counterfeit.checkpoint import latest_checkpoint, safe_load  # noqa: E402
from counterfeit.data import load_data  # noqa: E402
from counterfeit.errors import UserError  # noqa: E402
from counterfeit.metrics.evaluate import FEATURE_METRICS, evaluate, evaluate_images, flat_scores  # noqa: E402
from counterfeit.metrics.sanity import HIGHER_IS_BETTER, SANITY, garbage, worse  # noqa: E402
from counterfeit.sampling import generate, load_generator  # noqa: E402
from counterfeit.loop import train  # noqa: E402
from counterfeit.viz.grid import save_grid  # noqa: E402

PRESETS = ["real:mnist", "real:fashion-mnist", "gan2014-mnist", "gan2014-fashion", "dcgan-tf-mnist", "dcgan-mnist", "dcgan-fashion", "cgan-mnist",
           "acgan-mnist", "lsgan-fashion", "wgan-fashion", "wgan-gp-fashion", "fashion-fast", "vae-mnist",
           "vae-conv-mnist", "vae-fashion", "dcgan-cifar10", "sngan-cifar10"]
SANITY_ROWS = [f"sanity:{k}:{d}" for d in ("mnist", "fashion-mnist") for k in SANITY]


def _entry(r: dict) -> dict:
    """The fields family.json keeps of an evaluate() result."""
    return {"scores": flat_scores(r), "fid_ci95": r["fid"].get("ci95"), "kid_std": r["kid"]["kid_std"],
            "is_std": r["is"]["is_std"], "provenance": r["provenance"]}


def image_row(name: str, n: int, seed: int) -> dict:
    """'real:DATA': n real training images scored as if generated, the ceiling every preset is read against;
    'sanity:KIND:DATA': garbage in their place (metrics/sanity.py), to see which metrics it fools."""
    parts = name.split(":")
    ref = parts[-1]
    imgs = load_data(ref, "train").x[:n]
    if parts[0] == "sanity":
        imgs = garbage(parts[1], imgs, seed)
        what = f"{n} images: {SANITY[parts[1]]} ({ref})"
    else:
        what = f"{n} real {ref} training images in place of samples (no training)"
    r = evaluate_images(imgs, ref, FEATURE_METRICS, seed=seed)
    png = HERE / "results" / "family" / f"{name.replace(':', '-')}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    save_grid(imgs[:100], png, nrow=10)
    return {"preset": name, "description": what, "data": ref, "n_generated": n, **_entry(r),
            "grid": str(png.relative_to(HERE.parent)),
            "command": f"COUNTERFEIT_DATA=../shared/datasets python -m bench.family --only {name}"}


def robustness(presets: dict) -> dict:
    """Per dataset and score: does every sanity row score worse than the real images?"""
    out = {}
    for ref in ("mnist", "fashion-mnist"):
        real = presets.get(f"real:{ref}", {}).get("scores")
        rows = {k: presets[f"sanity:{k}:{ref}"]["scores"] for k in SANITY if f"sanity:{k}:{ref}" in presets}
        if not real or not rows:
            continue
        per = {}
        for m in HIGHER_IS_BETTER:
            fooled = [k for k, sc in rows.items() if not worse(m, sc[m], real[m])]
            per[m] = {"robust": not fooled, "fooled_by": fooled, "real": real[m], **{k: sc[m] for k, sc in rows.items()}}
        out[ref] = per
    return out


def run_one(name: str, minutes: float, work: Path, n: int, seed: int, rescore: bool = False,
            drs: float | None = None) -> dict:
    if name.startswith(("real:", "sanity:")):
        return image_row(name, n, seed)
    overrides = [f"train.max_minutes={minutes}", "train.epochs=100000", "train.steps=0", "train.parzen_monitor=false",
                 "train.keep_checkpoints=1"]
    cfg = config.load_config(name, overrides)
    out = work / name
    if rescore:  # score the run dir as it stands (same training, e.g. after adding a metric)
        state = safe_load(latest_checkpoint(out))
        steps, wall = int(state["step"]), float(state["elapsed"])
    else:
        shutil.rmtree(out, ignore_errors=True)
        t = time.time()
        steps = train(cfg, out, progress=True).step
        wall = time.time() - t
    loaded = load_generator(out)
    recipe, cfg, info = loaded
    # the same scoring as `counterfeit evaluate RUN --metrics fid,kid,is,pr,classes[,elbo|cas]`
    extra = ["elbo"] if cfg.model.recipe == "vae" else ["cas"] if recipe.conditional else []
    t = time.time()
    r = evaluate(out, FEATURE_METRICS + extra, n=n, seed=seed, loaded=loaded)
    eval_s = time.time() - t
    images_seen = steps * cfg.train.batch_size * max(1, cfg.train.n_dis)
    entry = {
        "preset": name, "description": cfg.description, "recipe": cfg.model.recipe, "data": cfg.data.name,
        "budget_minutes": minutes, "train_wall_s": round(wall, 1), "steps": steps, "images_seen": images_seen,
        "epochs": round(images_seen / len(load_data(cfg.data.name, cfg.data.split)), 2),
        "ema": info["ema"], "n_generated": n, "eval_s": round(eval_s, 1), **_entry(r),
        "command": f"COUNTERFEIT_DATA=../shared/datasets python -m bench.family --minutes {minutes:g} --only {name}",
    }
    if "elbo" in r:
        entry["elbo"] = r["elbo"]["elbo"]
    if "cas" in r:  # classification accuracy score: train on generated, test on real
        entry["cas"] = {k: v for k, v in r["cas"].items() if k != "data"}
    if drs is not None and recipe.outputs_probability and not recipe.conditional:
        # the same run through discriminator rejection sampling (D refit to the EMA/raw G first): another sampler
        t = time.time()
        rd = evaluate(out, FEATURE_METRICS, n=n, seed=seed, loaded=loaded, drs={"quantile": drs})
        entry["drs"] = {**rd["provenance"]["rejection"], "scores": flat_scores(rd), "fid_ci95": rd["fid"].get("ci95"),
                        "seconds": round(time.time() - t, 1),
                        "command": entry["command"] + f" --drs {drs:g}" + (" --rescore" if rescore else "")}
    labels = (torch.arange(100) // 10) if recipe.conditional else None
    grid = generate(recipe, 100, seed=seed + 1, labels=labels)
    png = HERE / "results" / "family" / f"{name}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    save_grid(grid, png, nrow=10)
    entry["grid"] = str(png.relative_to(HERE.parent))
    return entry


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=3.0, help="wall-clock training budget per preset")
    p.add_argument("--only", help="comma-separated presets (default: all)")
    p.add_argument("--n", type=int, default=10000, help="generated images scored per preset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=str(HERE / "_work" / "family"))
    p.add_argument("--result", default=str(HERE / "results" / "family.json"))
    p.add_argument("--rescore", action="store_true", help="no training: score the run dirs already in --work")
    p.add_argument("--drs", type=float, metavar="QUANTILE",
                   help="also score unconditional GAN runs through discriminator rejection sampling at this quantile")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else PRESETS + SANITY_ROWS
    if names == ["sanity"]:
        names = SANITY_ROWS
    result_path = Path(args.result)
    doc = json.loads(result_path.read_text()) if result_path.is_file() else {"presets": {}}
    doc["about"] = __doc__.split("\n\n", 2)[2].strip()
    for name in names:
        print(f"=== {name}: {args.minutes:g} min", flush=True)
        try:
            entry = run_one(name, args.minutes, Path(args.work), args.n, args.seed, args.rescore, args.drs)
        except UserError as e:  # e.g. CIFAR-10 not on disk: recorded, not hidden
            entry = {"preset": name, "not_run": str(e)}
        entry["machine"] = machine()
        entry["date"] = time.strftime("%Y-%m-%d %H:%M")
        doc["presets"][name] = entry
        doc["robustness"] = robustness(doc["presets"])
        result_path.write_text(json.dumps(doc, indent=2) + "\n")
        s = entry.get("scores")
        print(json.dumps({"preset": name, **(s or {"not_run": entry.get("not_run")})}), flush=True)
        if "drs" in entry:
            print(json.dumps({"preset": name, "drs": entry["drs"]["scores"], "acceptance": entry["drs"]["acceptance"]}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
