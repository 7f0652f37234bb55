"""Benchmark: learned inference and semi-supervised learning on MNIST (issue 34), each row trained for a fixed CPU
budget and scored through `evaluate` on the 10,000 test digits.

    COUNTERFEIT_DATA=../shared/datasets python -m bench inference --only ROW[,ROW...] [--minutes M]

Rows (merged into bench/results/inference.json, a picture per row in bench/results/inference/):
- `ssgan:SEED`       ssgan-mnist with 100 labels drawn by data.labelled_seed=SEED: test error (ssl), probe on D.
- `supervised:SEED`  ssgan-mnist-supervised: the same D on the same 100 labels alone.
- `bigan` / `bigan-conv`  bigan-mnist / bigan-conv-mnist: recon (L1, class agreement) and a linear probe on E(x).
- `untrained`        bigan-mnist's networks at their initial weights (one step at learning rate 0): the floor.
- `vae`              vae-mnist for the same budget: its encoder's mean as the code.
- `encoder:PRESET`   PRESET trained for the budget, then an encoder for its fixed G for the budget again.
- `ROW@LABEL`        ROW recorded as ROW@LABEL (its run dir and picture named ROW-LABEL), e.g. `bigan@60min`;
                     with `--extend L`, ROW@L's run resumed (in a copy) until its minutes reach this budget.
Pictures: for each class, 10 test digits in a row, each followed by its reconstruction G(E(x)) (ssgan rows: none).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from bench.harness import RESULTS, command, machine, record_row
from counterfeit import api
from counterfeit.data import load_data
from counterfeit.metrics.evaluate import evaluate

OUT = RESULTS / "inference.json"
PICS = RESULTS / "inference"
WORK = Path("/tmp/counterfeit-bench-inference")
TARGETS = {"ssgan": "test error at most 1.5% within 60 minutes (the paper: 0.93% +- 0.65%)",
           "bigan": "reconstructions keep the digit's class for at least 80% of test digits"}


THREADS = 0  # train.threads of every training (0: counterfeit's auto); --threads sets it
EXTEND = ""  # --extend LABEL: a row starts from a copy of ROW@LABEL's run and resumes it up to its own budget


def train(preset: str, name: str, minutes: float, extra=()) -> api.Run:
    out = WORK / name
    shutil.rmtree(out, ignore_errors=True)
    sets = [f"train.max_minutes={minutes}", "train.epochs=100000", "train.steps=0", "train.keep_checkpoints=1",
            "train.parzen_monitor=false", f"train.threads={THREADS}", *extra]
    if EXTEND:  # the budget counts the earlier sitting's minutes: the checkpoint keeps the elapsed time
        shutil.copytree(WORK / f"{name.rsplit('-', 1)[0]}-{EXTEND}", out)
        return api.train(out, out=out, overrides=sets, progress=False, resume=True)
    return api.train(preset, out=out, overrides=sets, progress=False)


def picture(run: api.Run, name: str) -> str:
    """10 test digits of each class, each followed by G(E(x)): 10 rows of 20."""
    from counterfeit.viz.grid import save_grid

    test = load_data("mnist", "test")
    idx = torch.cat([(test.y == c).nonzero().squeeze(1)[:10] for c in range(10)])
    x = test.x[idx]
    rec = run.reconstruct(x)
    both = torch.stack([x, rec], 1).flatten(0, 1)
    PICS.mkdir(parents=True, exist_ok=True)
    path = PICS / f"{name.replace(':', '-')}.png"
    save_grid(both, path, nrow=20)
    return str(path.relative_to(RESULTS.parent.parent))


def scored(run: api.Run, metrics: list[str]) -> dict:
    r = evaluate(run.path, metrics, n=10000)
    return {m: {k: v for k, v in r[m].items() if k != "classifier"} for m in metrics}


def row(name: str, minutes: float) -> dict:
    name, _, label = name.partition("@")  # a label keeps a second budget's row beside the first: bigan@60min
    kind, _, arg = name.partition(":")
    name = f"{name}-{label}" if label else name
    if kind in ("ssgan", "supervised"):
        preset = "ssgan-mnist" if kind == "ssgan" else "ssgan-mnist-supervised"
        run = train(preset, name.replace(":", "-"), minutes, [f"data.labelled_seed={arg or 1}"])
        return {"preset": preset, "labelled_seed": int(arg or 1), "scores": scored(run, ["ssl", "probe"]),
                "steps": run.step, "labelled": run.recipe.labelled.tolist()}
    if kind == "encoder":
        src = train(arg, f"source-{arg}" + (f"-{label}" if label else ""), minutes)
        run = train("encoder", name.replace(":", "-"), minutes, [f"model.from_run={src.path}"])
        return {"preset": "encoder", "source": arg, "source_steps": src.step, "steps": run.step,
                "scores": scored(run, ["recon", "probe"]), "picture": picture(run, name)}
    preset = {"bigan": "bigan-mnist", "bigan-conv": "bigan-conv-mnist", "untrained": "bigan-mnist",
              "vae": "vae-mnist"}[kind]
    if kind == "untrained":
        run = train(preset, name, 0, ["train.max_minutes=0", "train.steps=1", "train.epochs=0", "optim.lr_g=0",
                                      "optim.lr_d=0"])
    else:
        run = train(preset, name, minutes)
    return {"preset": preset, "steps": run.step, "scores": scored(run, ["recon", "probe"]),
            "picture": picture(run, name)}


def main(argv=None) -> int:
    global THREADS, EXTEND
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", required=True)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--threads", type=int, default=0, help="train.threads (1: two rows at once, a core each)")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--extend", default="", help="resume a copy of ROW@LABEL's run (labelled rows, not encoder:)")
    args = p.parse_args(argv)
    THREADS, EXTEND = args.threads, args.extend
    if THREADS:  # the scoring too: a training puts torch's thread count back as it found it
        torch.set_num_threads(THREADS)
    for name in args.only.split(","):
        t = time.time()
        entry = row(name, args.minutes)
        if EXTEND:
            entry["extends"] = f"{name.split('@')[0]}@{EXTEND}"
        entry.update(budget_minutes=args.minutes, train_threads=args.threads or "auto",
                     row_seconds=round(time.time() - t, 1), machine=machine(),
                     command=f"{command().split(' --only')[0]} --only {name}", date=time.strftime("%Y-%m-%d %H:%M"))
        record_row(args.out, name, entry, about=__doc__.split("\n\n")[0], targets=TARGETS)
        print(name, json.dumps(entry["scores"])[:300], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
