"""Diagnostic: does a conditional generator use its noise? Within-class pixel spread against real digits.

    COUNTERFEIT_DATA=../shared/datasets python -m bench.cond_diversity --steps 1500 \
        --variant concat= --variant cbn=model.g_cond=cbn [--preset cgan-mnist] [--threads 1]
    COUNTERFEIT_DATA=../shared/datasets python -m bench.cond_diversity --runs [NAME=]RUN ...   # score existing runs

Each variant is `NAME=OVERRIDE[,OVERRIDE...]` on the preset (cgan-mnist by default), trained for --steps G updates
from seed 0 (in-training Parzen monitor off). Then for each run: 100 samples per class (one label, 100 noise
vectors), the per-pixel standard deviation across them averaged over pixels and classes, against the same for 100
real MNIST test digits per class; the share of those 1,000 samples the bundled MNIST classifier assigns to the
label they were drawn for (also at each checkpoint the run kept); for a G that concatenates the label to z, the
label's share of its first layer's variance; and precision/recall/FID of 5,000 samples on the bundled classifier. A generator that
ignores z within a class has a small spread and zero recall. Results are merged into
bench/results/cond-diversity.json under the variant's name (or the run dir).
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
from counterfeit.data import load_data  # noqa: E402
from counterfeit.metrics.evaluate import evaluate_images  # noqa: E402
from counterfeit.metrics.features import load_extractor  # noqa: E402
from counterfeit.recipes import build_recipe  # noqa: E402
from counterfeit.sampling import generate, load_generator  # noqa: E402
from counterfeit.loop import train  # noqa: E402

RESULT = HERE / "results" / "cond-diversity.json"


def within_class_std(x: torch.Tensor, y: torch.Tensor, per_class: int = 100) -> float:
    return sum(x[y == c][:per_class].float().std(0).mean().item() for c in range(10)) / 10


def label_accuracy(recipe, ex) -> tuple[float, torch.Tensor, torch.Tensor]:
    """Share of 100 samples per class the classifier assigns to the label they were drawn for."""
    labels = torch.arange(1000) // 100
    x = generate(recipe, 1000, seed=1, labels=labels)  # uint8
    return (ex(x)[1].argmax(1) == labels).double().mean().item(), x, labels


def label_variance_share(recipe) -> float | None:
    """G with the label concatenated to z: median over the first layer's units of the share of their variance (over
    z and random labels) that comes from the label's embedding, before the BatchNorm that follows. None for cBN."""
    G = recipe.G
    if getattr(G, "embed", None) is None:
        return None
    zd = recipe.cfg.model.z_dim
    w = G.fc.weight  # (units, z_dim + embed_dim)
    gen = torch.Generator().manual_seed(0)
    z, y = torch.randn(5000, zd, generator=gen), torch.randint(10, (5000,), generator=gen)
    with torch.no_grad():
        vz, vy = (z @ w[:, :zd].T).var(0), (G.embed(y) @ w[:, zd:].T).var(0)
    return round((vy / (vz + vy)).median().item(), 3)


def score(run: Path) -> dict:
    ex = load_extractor("mnist")
    by_step = {}
    for ck in sorted((run / "checkpoints").glob("step-*")):  # the checkpoints the run kept: how fast labels take
        r, _, inf = load_generator(ck)
        by_step[inf["step"]] = round(label_accuracy(r, ex)[0], 4)
    recipe, cfg, info = load_generator(run)
    acc, x, labels = label_accuracy(recipe, ex)
    r = evaluate_images(generate(recipe, 5000, seed=2), "mnist", ["pr", "fid"], seed=0)
    return {"step": info["step"], "g_cond": cfg.model.g_cond, "d_cond": cfg.model.d_cond,
            "within_class_std": round(within_class_std(x, labels), 2),
            "label_accuracy": round(acc, 4), "label_accuracy_by_step": by_step,
            "label_variance_share": label_variance_share(recipe),
            "precision": r["pr"]["precision"], "recall": r["pr"]["recall"], "fid": round(r["fid"]["fid"], 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cgan-mnist")
    p.add_argument("--variant", action="append", default=[], help="NAME=OVERRIDE[,OVERRIDE...] (repeatable)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--threads", type=int, default=0, help="train.threads for the runs (0 = the preset's)")
    p.add_argument("--runs", nargs="*", default=[], help="score existing run dirs ([NAME=]DIR) instead of training")
    p.add_argument("--work", default=str(HERE / "_work" / "cond_diversity"))
    args = p.parse_args(argv)
    doc = json.loads(RESULT.read_text()) if RESULT.is_file() else {"runs": {}}
    doc["about"] = __doc__.split("\n\n", 2)[2].strip()
    doc["real_within_class_std"] = round(within_class_std(*(lambda d: (d.x, d.y))(load_data("mnist", "test"))), 2)
    torch.manual_seed(0)
    fresh = build_recipe(config.load_config(args.preset, ["model.g_cond=concat"]), (1, 28, 28))
    doc["label_variance_share_at_init"] = {"preset": args.preset, "g_cond": "concat", "seed": 0,
                                           "share": label_variance_share(fresh)}
    todo = [(r.partition("=")[0], Path(r.partition("=")[2]), None) if "=" in r else (r, Path(r), None) for r in args.runs]
    for v in args.variant:
        name, _, ov = v.partition("=")
        overrides = [o for o in ov.split(",") if o] + [f"train.steps={args.steps}", "train.epochs=0",
                                                        "train.parzen_monitor=false", "train.seed=0"]
        if args.threads:
            overrides.append(f"train.threads={args.threads}")
        out = Path(args.work) / name
        shutil.rmtree(out, ignore_errors=True)
        t = time.time()
        train(config.load_config(args.preset, overrides), out, progress=False)
        todo.append((name, out, {"preset": args.preset, "overrides": [o for o in ov.split(",") if o],
                                 "train_s": round(time.time() - t, 1)}))
    for name, run, trained in todo:
        row = score(run)
        if trained:
            row.update(trained)
            row["command"] = (f"COUNTERFEIT_DATA=../shared/datasets python -m bench.cond_diversity --preset "
                              f"{args.preset} --steps {args.steps} --variant {name}={','.join(trained['overrides'])}"
                              + (f" --threads {args.threads}" if args.threads else ""))
        else:  # rescoring a run: keep what the entry says about how it was trained
            row = {**doc["runs"].get(name, {}), **row,
                   "scored_by": f"COUNTERFEIT_DATA=../shared/datasets python -m bench.cond_diversity --runs {name}={run}"}
        row["machine"], row["date"] = machine(), time.strftime("%Y-%m-%d %H:%M")
        doc["runs"][name] = row
        print(json.dumps({"run": name, **{k: v for k, v in row.items() if k != "machine"}}), flush=True)
    RESULT.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
