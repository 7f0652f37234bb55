"""Benchmark: image-to-image translation on the built-in tasks, every row on the same CPU budget, scored offline.

    COUNTERFEIT_DATA=../shared/datasets python -m bench.translation [--minutes 15] [--only p2p-l1,cyclegan]
    ... --only cyclegan --as cyclegan-w32-b16 --set model.width_g=32 --set train.batch_size=16   # a what-if row
    ... --ceiling            # how much class information the edge maps carry (an edge-map classifier)

Rows (each a shipped preset, cut by train.max_minutes at a constant lr: the presets' linear decay starts at a step
count a short budget does not reach, so it is switched off here for every row alike):
  edges2fashion, Pix2Pix Table 1's ablation   p2p-l1 (L1 only), p2p-cgan (cGAN only), p2p-l1-cgan (L1 + cGAN);
  edges2fashion unpaired                       cyclegan (never sees a pair);
  colorize                                     colorize-l1 (U-Net + L1), colorize-p2p (L1 + cGAN); the grayscale
                                               input itself is the baseline every paired score reports.
All are scored on the test split with `evaluate` (metrics/translation.py): L1 / PSNR / SSIM against the true
targets, and on edges2fashion the bundled Fashion-MNIST classifier's accuracy on the outputs (beside its accuracy
on the real targets) and FID / KID in its features; CycleGAN also its cycle and identity L1. A picture per row (the
run's last preview grid: input | output | target, or CycleGAN's a | G_AB(a) | G_BA(G_AB(a)) | b | ...) goes to
bench/results/translation/ROW.png. Results merge into bench/results/translation.json with the machine, the date, the
command and each row's budget; the targets of issue 14 are checked from the rows present and printed with their
numbers (CycleGAN's FID against the newest shipped Pix2Pix L1 + cGAN row from the same kind of CPU).
Run dirs go to --work (default /tmp/counterfeit-bench-translation): checkpoints of a 16M-parameter U-Net are large.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit import config  # noqa: E402
from counterfeit.metrics.evaluate import evaluate  # noqa: E402
from counterfeit.loop import train  # noqa: E402

ROWS = {
    "p2p-l1": ("pix2pix-edges2fashion-l1", "edges2fashion, L1 only (no D)"),
    "p2p-cgan": ("pix2pix-edges2fashion-cgan", "edges2fashion, cGAN only (no L1)"),
    "p2p-l1-cgan": ("pix2pix-edges2fashion", "edges2fashion, L1 + cGAN (Pix2Pix)"),
    "cyclegan": ("cyclegan-edges2fashion", "edges2fashion unpaired, CycleGAN"),
    "colorize-l1": ("pix2pix-colorize-l1", "colorize, U-Net + L1"),
    "colorize-p2p": ("pix2pix-colorize", "colorize, L1 + cGAN (Pix2Pix)"),
}
METRICS = {"edges2fashion": ["l1", "psnr", "ssim", "acc", "fid", "kid"],
           "edges2fashion-unpaired": ["l1", "psnr", "ssim", "acc", "fid", "kid", "cycle", "identity"],
           "colorize": ["l1", "psnr", "ssim"]}


def headline(r: dict) -> dict:
    out = {}
    for m, key in (("l1", "l1"), ("psnr", "psnr"), ("ssim", "ssim"), ("acc", "acc"), ("fid", "fid"), ("kid", "kid")):
        if m in r:
            out[m] = r[m][key]
            if "baseline_input" in r[m]:
                out[f"{m}_input_baseline"] = r[m]["baseline_input"]
    if "acc" in r:
        out["acc_real_targets"] = r["acc"]["real_targets"]
    for m in ("cycle", "identity"):
        if m in r:
            out.update({f"{m}/{k}": v for k, v in r[m].items() if isinstance(v, float)})
    return out


def run_row(name: str, minutes: float, work: Path, seed: int, sets: list[str] = (), label: str | None = None) -> dict:
    """Train ROWS[name]'s preset for `minutes` (with the what-if overrides `sets`), score it, keep it as `label`."""
    preset, what = ROWS[name]
    label = label or name
    cfg = config.load_config(preset, [f"train.max_minutes={minutes}", "train.steps=1000000",
                                      "optim.linear_decay_start=0", f"train.seed={seed}", "train.keep_checkpoints=1",
                                      "train.checkpoint_every=100000", "train.sample_every=2000", *sets])
    run = work / label
    if run.exists():
        shutil.rmtree(run)
    t = time.time()
    res = train(cfg, run, progress=True)
    wall = time.time() - t
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rates = [r["img/s"] for r in rows if "img/s" in r]
    t = time.time()
    r = evaluate(run, METRICS[cfg.data.name], seed=seed)
    eval_s = time.time() - t
    last = sorted((run / "samples").glob("step-*.png"))[-1]
    png = HERE / "results" / "translation" / f"{label}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(last, png)
    print(f"{label}: {res.step} steps in {res.wall_s:.0f} s; " + "  ".join(f"{k} {v:.4g}" for k, v in headline(r).items()))
    return {"row": label, "preset": preset, "what": what + "".join(f", {x}" for x in sets), "minutes": minutes,
            "steps": res.step,
            "train_seconds": round(res.wall_s, 1), "wall_seconds_incl_setup": round(wall, 1),
            "images_per_s": round(sum(rates) / max(1, len(rates)), 1), "batch_size": cfg.train.batch_size,
            "overrides": ["optim.linear_decay_start=0", f"train.max_minutes={minutes}", *sets],
            "scores": headline(r), "full": {k: v for k, v in r.items() if k != "seconds"},
            "eval_seconds": round(eval_s, 1), "picture": str(png.relative_to(HERE.parent))}


def ceiling(epochs: int, seed: int) -> dict:
    """How much of an article's class its edge map still carries: the bundled classifier's architecture and recipe
    (metrics/features.train_classifier) trained on the edge maps of the 60,000 training articles, tested on the
    test articles' edge maps. A translator followed by the fixed article classifier is itself a classifier of edge
    maps, so this accuracy is what a translator's classifier score can be held against, beside 0.9248 on the real
    articles (the same architecture and recipe trained on them)."""
    from counterfeit.data import load_data
    from counterfeit.data.translation import EDGE_OPERATOR, cached_edges
    from counterfeit.metrics.features import load_extractor, train_classifier

    tr, te = load_data("fashion-mnist", "train"), load_data("fashion-mnist", "test")
    t = time.time()
    _, info = train_classifier(cached_edges(tr.x, "train"), tr.y, cached_edges(te.x, "test"), te.y, epochs=epochs,
                               seed=seed)
    articles = load_extractor("fashion-mnist")
    return {"what": "the bundled Fashion-MNIST classifier's architecture and training recipe, trained and tested on "
                    "the Canny edge maps (28x28) instead of the articles",
            "edges_test_accuracy": info["test_accuracy"], "articles_test_accuracy": articles.provenance()["test_accuracy"],
            "epochs": epochs, "seed": seed, "train_s": round(time.time() - t, 1), "edge_operator": EDGE_OPERATOR,
            "command": f"python -m bench.translation --ceiling --ceiling-epochs {epochs} --seed {seed}"}


def same_cpu(rows: dict, row: dict, preset: str) -> dict | None:
    """The newest row of `preset` as shipped (no what-if --set) trained on the same kind of CPU as `row`, if any: a
    shared machine's speed drifts between sessions (the same CycleGAN row made 894 steps one day, 1,109 another)."""
    def cpu(r):
        return r["machine"]["cpu"], tuple(r["machine"].get("cpu_flags", ()))

    peers = [r for r in rows.values() if r["preset"] == preset and len(r["overrides"]) == 2 and cpu(r) == cpu(row)]
    return max(peers, key=lambda r: r.get("date", ""), default=None)  # the newest: the same session, if any


def check_targets(rows: dict) -> list[str]:
    """Issue 14's targets, from the rows present, each with its numbers."""
    out = []
    p2p = {k: rows[k]["scores"] for k in ("p2p-l1", "p2p-cgan", "p2p-l1-cgan") if k in rows}
    if len(p2p) == 3:
        best = min(p2p, key=lambda k: p2p[k]["fid"])
        out.append(f"L1 + cGAN has the best FID of the three: {'yes' if best == 'p2p-l1-cgan' else 'NO'} "
                   "(" + ", ".join(f"{k} {v['fid']:.2f}" for k, v in p2p.items()) + ")")
    if "p2p-l1-cgan" in p2p:
        s = p2p["p2p-l1-cgan"]
        gap = 100 * (s["acc_real_targets"] - s["acc"])
        out.append(f"L1 + cGAN classifier score within 5 points of the real targets': {'yes' if gap <= 5 else 'NO'} "
                   f"({s['acc']:.4f} vs {s['acc_real_targets']:.4f}, gap {gap:.1f} points)")
    if "cyclegan" in rows:
        s = rows["cyclegan"]["scores"]
        out.append(f"CycleGAN classifier score >= 0.75: {'yes' if s['acc'] >= 0.75 else 'NO'} ({s['acc']:.4f})")
        peer = same_cpu(rows, rows["cyclegan"], ROWS["p2p-l1-cgan"][0])
        if peer is not None:  # equal minutes are equal work only on one kind of CPU
            ratio = s["fid"] / peer["scores"]["fid"]
            out.append(f"CycleGAN FID within 2x of Pix2Pix L1 + cGAN: {'yes' if ratio <= 2 else 'NO'} "
                       f"({s['fid']:.2f} vs {peer['scores']['fid']:.2f} of row {peer['row']} on the same CPU, "
                       f"{ratio:.2f}x)")
    for k in ("colorize-l1", "colorize-p2p"):
        if k in rows:
            s = rows[k]["scores"]
            out.append(f"{k}: PSNR {s['psnr']:.2f} dB / SSIM {s['ssim']:.4f}; the grayscale input itself "
                       f"{s['psnr_input_baseline']:.2f} dB / {s['ssim_input_baseline']:.4f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=15.0, help="training budget per row")
    ap.add_argument("--only", help=f"comma-separated rows of {', '.join(ROWS)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a what-if override of the row's preset (repeatable); give the row a new name with --as")
    ap.add_argument("--as", dest="label", help="record the (single) row under this name instead of its own")
    ap.add_argument("--ceiling", action="store_true",
                    help="only measure how much class information the edge maps carry (an edge-map classifier)")
    ap.add_argument("--ceiling-epochs", type=int, default=10, help="the bundled classifier's 10 epochs")
    ap.add_argument("--work", default="/tmp/counterfeit-bench-translation")
    ap.add_argument("--result", default=str(HERE / "results" / "translation.json"))
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(ROWS)
    if args.label and len(names) != 1:
        ap.error("--as names one row: give --only ROW")
    if args.set and not args.label:
        ap.error("a row run with --set is another experiment: name it with --as (the shipped row keeps its name)")
    out = Path(args.result)
    doc = json.loads(out.read_text()) if out.is_file() else {"rows": {}}
    if args.ceiling:
        doc["ceiling"] = {**ceiling(args.ceiling_epochs, args.seed), "machine": machine()}
        out.write_text(json.dumps(doc, indent=2))
        print(f"edge maps: {doc['ceiling']['edges_test_accuracy']:.4f} test accuracy "
              f"(articles {doc['ceiling']['articles_test_accuracy']:.4f})")
        return
    for name in names:
        row = run_row(name, args.minutes, Path(args.work), args.seed, args.set, args.label)
        row["machine"] = machine()  # with the CPU flags
        row["date"] = time.strftime("%Y-%m-%d %H:%M")
        row["command"] = " ".join(["python", "bench/translation.py"] + sys.argv[1:])
        doc["rows"][row["row"]] = row
        doc["targets"] = check_targets(doc["rows"])
        out.write_text(json.dumps(doc, indent=2))
    for line in doc["targets"]:
        print(line)


if __name__ == "__main__":
    main()
