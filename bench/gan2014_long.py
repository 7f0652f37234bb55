"""Benchmark (issue 17): the 2014 GAN trained as long as its authors did, its checkpoint picked on validation digits.

    COUNTERFEIT_DATA=../shared/datasets python -m bench.gan2014_long [--minutes M] [--run DIR]   # a sitting
    COUNTERFEIT_DATA=../shared/datasets python -m bench.gan2014_long --score-only                # record as it stands

Why: Table 1's 225 +- 2 nats came from the authors' mnist.yaml (goodfeli/adversarial), which has no termination
criterion (it ran until stopped, saving every epoch), divides the learning rate by 1.000004 after every update (a
time constant of 500 epochs) and watched a Parzen estimate on the validation split (monitor_ll). 250 epochs gave
180.3 +- 2.3 here (bench/results/gan2014-mnist.json).

What: preset gan2014-mnist unchanged (recipe, nets, SGD, lr decay, momentum schedule) with train.epochs 2000, and
  train.select=parzen   best.pt = the step with the best Parzen monitor: 10,000 samples scored on the 10,000
                        validation digits train[50000:60000] at the best sigma of the paper's grid; the test set is
                        never looked at during training
  train.patience        100,000 steps (200 epochs) without a better monitor stop the run
  monitor every 2,500 steps (5 epochs; the monitor costs seconds, an epoch of training about ten)
Each sitting resumes the run dir (exactly: the run is bit-for-bit the same however it is cut) for --minutes of
training. The run dir defaults to ~/counterfeit-runs/gan2014-mnist-long, outside the work tree, so that it can
outlive a work tree that is laid anew; if it is lost, the same command rebuilds it from step 0 on the same kind of
machine and thread count (float reduction order differs between CPU kinds).

Second row (--quick PRESET): the best Parzen figure a recipe of the toolkit reaches in 15 minutes of training,
PRESET trained on train[0:50000] (so the validation digits that choose sigma stay unseen) and scored the same way,
memorisation check included; rows are kept per preset under "fifteen_minutes".

Writes bench/results/gan2014-mnist-long.json (+ .png): the monitor against epochs and training time, the chosen
epoch so far, the status (running / finished and why), the machine and the command; and the chosen checkpoint
through the full Table 1 protocol on the test set (10,000 samples, sigma chosen on train[50000:51000], mean and
standard error) with the memorisation check beside it (metrics/nearest.py): each sample's L2 distance to its nearest
training digit against the same for the test digits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit import config  # noqa: E402
from counterfeit.checkpoint import latest_checkpoint, safe_load  # noqa: E402
from counterfeit.metrics.evaluate import evaluate  # noqa: E402
from counterfeit.loop import lr_at, train  # noqa: E402
from counterfeit.viz.curves import read_metrics  # noqa: E402

STEPS_PER_EPOCH = 500  # 50,000 training digits in batches of 100
PLANNED_EPOCHS = 2000
PATIENCE_EPOCHS = 200
OVERRIDES = [f"train.epochs={PLANNED_EPOCHS}", "train.select=parzen",
             f"train.patience={PATIENCE_EPOCHS * STEPS_PER_EPOCH}",
             f"train.sample_every={5 * STEPS_PER_EPOCH}", f"train.checkpoint_every={5 * STEPS_PER_EPOCH}",
             "train.parzen_monitor_samples=10000", "train.parzen_monitor_valid=10000", "train.keep_checkpoints=2"]
PAPER = {"mean": 225, "se": 2}
TREND_FROM_EPOCH = 250  # momentum is constant (0.7) from epoch 250 on, so a unit of learning rate means one thing


def sitting(run: Path, minutes: float) -> None:
    """Train for `minutes` more of training time (train.max_minutes counts a run's whole training time)."""
    last = latest_checkpoint(run) if run.exists() else None
    before = float(safe_load(last)["elapsed"]) if last else 0.0
    cfg = config.load_config("gan2014-mnist", [*OVERRIDES, f"train.max_minutes={before / 60 + minutes:.3f}"])
    res = train(cfg, run, resume=run.exists(), progress=sys.stderr.isatty())
    print(f"step {res.step} (epoch {res.step / STEPS_PER_EPOCH:g}) after {res.wall_s:.0f} s of training", flush=True)


def score(path: Path) -> dict:
    """The Table 1 protocol on the test set and the memorisation check, for one checkpoint."""
    t = time.time()
    r = evaluate(path, ["parzen", "nearest"], n=10000, seed=0)
    p, m = r["parzen"], r["nearest"]
    return {"checkpoint": str(path), "step": r["provenance"]["step"],
            "epoch": r["provenance"]["step"] / STEPS_PER_EPOCH,
            "parzen": {k: p[k] for k in ("mean", "se", "sigma", "n_samples", "valid", "test")},
            "nearest": m, "eval_s": round(time.time() - t, 1)}


def quick(preset: str, minutes: float, work: Path, result: Path) -> dict:
    """PRESET for `minutes` of training on train[0:50000], scored like the long run's chosen checkpoint."""
    import shutil

    run = work / preset
    if run.exists():
        shutil.rmtree(run)
    cfg = config.load_config(preset, ["data.split=paper-train", "train.steps=10000000", "train.epochs=0",
                                      f"train.max_minutes={minutes}", "train.parzen_monitor=false"])
    res = train(cfg, run, progress=sys.stderr.isatty())
    row = {"preset": preset, "minutes": minutes, "steps": res.step, "train_s": round(res.wall_s, 1),
           "overrides": ["data.split=paper-train", f"train.max_minutes={minutes}"], **score(res.checkpoint),
           "epoch": res.step * cfg.train.batch_size / 50000,  # the preset's own batch, not the 2014 GAN's 100
           "machine": machine(), "command": f"COUNTERFEIT_DATA=../shared/datasets python -m bench.gan2014_long "
                                            f"--quick {preset} --quick-minutes {minutes:g}"}
    doc = json.loads(result.read_text()) if result.is_file() else {}
    doc.setdefault("fifteen_minutes", {})[preset if minutes == 15 else f"{preset}@{minutes:g}min"] = row
    result.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{preset}: {res.step} steps, Parzen {row['parzen']['mean']:.1f} +- {row['parzen']['se']:.1f}, "
          f"copies {row['nearest']['copies']:.3f}, ratio {row['nearest']['ratio']:.3f}")
    return row


def lr_epochs(lr: float, lr_decay: float, min_lr: float, steps: int = PLANNED_EPOCHS * STEPS_PER_EPOCH) -> np.ndarray:
    """The learning rate summed over updates, in epochs at learning rate 1: entry i covers updates 0..i-1.

    The preset divides the learning rate by `lr_decay` after every update (one update of G and one of D per step), so
    the second 1,000 epochs get exp(-2) = 14% of what the first 1,000 got: a run under this schedule stops
    learning by itself, and an extrapolation in epochs that ignores it overshoots.
    """
    per_update = np.maximum(lr * lr_decay ** -np.arange(steps, dtype=np.float64), min_lr)
    return np.concatenate([[0.0], np.cumsum(per_update)]) / STEPS_PER_EPOCH


def on_line(fit: dict, summed):
    """A fitted line's monitor value at the summed learning rate `summed` (a number or an array)."""
    return fit["a"] + fit["nats_per_lr_epoch"] * summed


def trend(monitor: list[dict], optim: dict) -> dict:
    """Where the validation monitor is heading: a straight line in the summed learning rate, extrapolated.

    Since epoch 250 (momentum constant) the monitor has climbed about in proportion to the learning rate spent,
    which the schedule makes smaller every update; the line is read at 2,000 epochs, the run's end. Lines in epochs
    (and in log epochs) are kept beside it for comparison: they ignore the decay.
    """
    cum = lr_epochs(**optim)
    e = np.array([r["epoch"] for r in monitor])
    v = np.array([r["valid_parzen"] for r in monitor])
    step = np.array([r["step"] for r in monitor])
    s, s_end, target = cum[step], cum[-1], PAPER["mean"]
    lr_now = lr_at(optim["lr"], int(step[-1]), optim["lr_decay"], optim["min_lr"])
    out = {"model": "valid_parzen = a + b * lr_epochs, lr_epochs = the learning rate summed over updates / 500 "
                    "(an epoch at learning rate 1 counts 1); lines fitted by least squares to the monitor. The "
                    "standard errors treat neighbouring monitors as independent, which they are not: read the two "
                    "windows' spread as the uncertainty",
           "schedule": optim, "lr_now": lr_now, "lr_epochs_now": round(float(s[-1]), 3),
           "lr_epochs_at_2000": round(float(s_end), 3),
           "fits": {}, "epoch_fits_ignoring_the_decay": {}}
    for name, keep in ((f"since epoch {TREND_FROM_EPOCH}", e >= TREND_FROM_EPOCH),
                       ("last 300 epochs", e >= e[-1] - 300)):
        if keep.sum() < 10:
            continue
        (b, a), cov = np.polyfit(s[keep], v[keep], 1, cov=True)
        x = np.array([s_end, 1.0])
        reach = (target - a) / b if b > 0 else np.inf
        out["fits"][name] = {
            "epochs": [float(e[keep][0]), float(e[keep][-1])], "monitors": int(keep.sum()),
            "a": round(float(a), 3), "nats_per_lr_epoch": round(float(b), 3), "se": round(float(np.sqrt(cov[0, 0])), 3),
            "nats_per_100_epochs_now": round(float(b * lr_now * 100), 2),
            "residual_sd": round(float(np.std(v[keep] - (a + b * s[keep]))), 2),
            "monitor_at_2000_epochs": round(float(a + b * s_end), 1),
            "monitor_at_2000_epochs_se": round(float(np.sqrt(x @ cov @ x)), 1),
            "reaches_225_at_epoch": (round(float(np.searchsorted(cum, reach)) / STEPS_PER_EPOCH)
                                     if reach <= s_end else None)}
    late = e >= e[-1] - 300
    b, a = np.polyfit(e[late], v[late], 1)
    out["epoch_fits_ignoring_the_decay"]["line in epochs, last 300 epochs"] = {
        "nats_per_100_epochs": round(float(b * 100), 2), "reaches_225_at_epoch": round(float((target - a) / b))
        if b > 0 else None, "monitor_at_2000_epochs": round(float(a + b * PLANNED_EPOCHS), 1)}
    keep = e >= 150
    b, a = np.polyfit(np.log(e[keep]), v[keep], 1)
    out["epoch_fits_ignoring_the_decay"]["a + b ln(epoch), since epoch 150"] = {
        "reaches_225_at_epoch": round(float(np.exp((target - a) / b))) if b > 0 else None,
        "monitor_at_2000_epochs": round(float(a + b * np.log(PLANNED_EPOCHS)), 1)}
    return out


def predictions(path: Path, monitor: list[dict], tr: dict) -> list[dict]:
    """Each record's lines kept as a prediction and checked against the monitors that came after it.

    Kept in a file of their own (PATH) so that a prediction made before a sitting survives the sitting's record.
    """
    cum = lr_epochs(**tr["schedule"])
    items = json.loads(path.read_text()) if path.is_file() else []
    for p in items:
        later = [r for r in monitor if r["step"] > p["made_at_step"]]
        if not later:
            continue
        v = np.array([r["valid_parzen"] for r in later])
        s = cum[np.array([r["step"] for r in later])]
        p["check"] = {"monitors": len(later), "epochs": [later[0]["epoch"], later[-1]["epoch"]],
                      "observed_mean": round(float(v.mean()), 2), "lines": {}}
        for name, f in p["fits"].items():
            predicted = on_line(f, s)
            p["check"]["lines"][name] = {"predicted_mean": round(float(predicted.mean()), 2),
                                         "mean_residual": round(float((v - predicted).mean()), 2)}
    last = monitor[-1]
    if not any(p["made_at_step"] == last["step"] for p in items):
        items.append({"made_at_step": last["step"], "made_at_epoch": last["epoch"],
                      "made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "fits": {name: {k: f[k] for k in ("epochs", "a", "nats_per_lr_epoch", "monitor_at_2000_epochs")}
                               for name, f in tr["fits"].items()}})
    path.write_text(json.dumps(items, indent=2) + "\n")
    return items


def test_history(history: list[dict], chosen: dict) -> list[dict]:
    """The chosen checkpoint's test score at each record, kept across records (one entry per chosen step)."""
    row = {"step": chosen["step"], "epoch": chosen["epoch"], "hours": chosen["hours"],
           "valid_parzen": chosen["valid_parzen"], "test_parzen": round(chosen["parzen"]["mean"], 2),
           "se": round(chosen["parzen"]["se"], 2), "copies": round(chosen["nearest"]["copies"], 4),
           "nearest_ratio": round(chosen["nearest"]["ratio"], 3),
           "scored": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    kept = [r for r in history if r["step"] != row["step"]]
    return sorted([*kept, row], key=lambda r: r["step"])


def lines_at(tr: dict, history: list[dict]) -> list[dict]:
    """The test scores of the chosen checkpoints beside what each line says at their steps: the monitor's best is
    a maximum over noisy monitors, so the checkpoint it picks scores nearer the line than the best monitor."""
    cum = lr_epochs(**tr["schedule"])
    return [{"epoch": r["epoch"], "test_parzen": r["test_parzen"], "valid_parzen": r["valid_parzen"],
             **{name: round(float(on_line(f, cum[r["step"]])), 1)
                for name, f in tr["fits"].items() if r["epoch"] >= f["epochs"][0]}} for r in history]


def pace(monitor: list[dict], step_now: int) -> dict:
    """Training time per step over the last 100 epochs of monitors, and what the rest of the 2,000 epochs would take."""
    last = [r for r in monitor if r["epoch"] >= monitor[-1]["epoch"] - 100]
    s = (last[-1]["hours"] - last[0]["hours"]) * 3600 / max(last[-1]["step"] - last[0]["step"], 1)
    left = max(PLANNED_EPOCHS * STEPS_PER_EPOCH - step_now, 0)
    return {"ms_per_step_last_100_epochs": round(s * 1000, 1), "steps_left": left,
            "hours_left_at_that_pace": round(left * s / 3600, 2), "note": "training time, the monitor included"}


def plot(doc: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = doc["monitor"]
    tr = doc.get("trend")
    cum = lr_epochs(**tr["schedule"]) if tr else None
    panels = [("epoch", "epoch"), ("hours", "training time (h)")]
    low = min(r["valid_parzen"] for r in c if r["epoch"] >= 50) - 5  # the first epochs' climb from -75 is cut off
    if tr:
        panels.insert(1, ("lr_epochs", "learning rate summed over updates (epochs at lr 1)"))
    fig, ax = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2))
    for a, (key, label) in zip(ax, panels):
        def x(r: dict, key=key):  # monitor rows, test scores and the chosen checkpoint all carry step, epoch, hours
            return cum[r["step"]] if key == "lr_epochs" else r[key]

        a.plot([x(r) for r in c], [r["valid_parzen"] for r in c], lw=1, label="validation monitor (10k on 10k)")
        hist = [r for r in doc.get("test_history", []) if r["step"] != doc["chosen"]["step"]]
        if hist:
            a.errorbar([x(r) for r in hist], [r["test_parzen"] for r in hist], [r["se"] for r in hist], fmt="D", ms=3,
                       color="k", label="chosen at earlier records, test set")
        for s, name, mk in ((doc.get("chosen"), "chosen, test set", "o"), (doc.get("latest"), "latest, test set", "s")):
            if s:
                a.errorbar([x(s)], [s["parzen"]["mean"]], [s["parzen"]["se"]], fmt=mk, label=name)
        if tr and key != "hours":
            for (name, f), color in zip(tr["fits"].items(), ("C3", "C4")):
                lo = int(f["epochs"][0] * STEPS_PER_EPOCH)
                grid = np.linspace(lo, PLANNED_EPOCHS * STEPS_PER_EPOCH, 200).astype(int)
                a.plot(cum[grid] if key == "lr_epochs" else grid / STEPS_PER_EPOCH, on_line(f, cum[grid]), ls=":",
                       color=color, lw=1.5, label=f"line in summed lr ({name}), to epoch {PLANNED_EPOCHS:,}")
            if key == "lr_epochs":
                a.axvline(cum[-1], color="grey", lw=0.8, label=f"epoch {PLANNED_EPOCHS:,}")
        a.axhline(PAPER["mean"], color="k", ls="--", lw=1, label="paper, 225 nats")
        a.set_xlabel(label)
        a.set_ylabel("Parzen log-likelihood (nats)")
        a.grid(alpha=0.3)
        a.set_ylim(low, PAPER["mean"] + 8)
    ax[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"gan2014-mnist trained long ({doc['status']})")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def record(run: Path, result: Path, command: str) -> dict:
    rows = read_metrics(run / "metrics.jsonl")
    monitor = [{"epoch": r["epoch"], "step": r["step"], "hours": round(r["time"] / 3600, 4),
                "valid_parzen": round(r["parzen/monitor"], 2), "sigma": r["parzen/monitor_sigma"]}
               for r in rows if "parzen/monitor" in r]
    best = json.loads((run / "best.json").read_text())
    last = latest_checkpoint(run)
    state = safe_load(last)
    step, hours = int(state["step"]), float(state["elapsed"]) / 3600
    planned = PLANNED_EPOCHS * STEPS_PER_EPOCH
    stale = step - best["step"]
    status = (f"finished: {PLANNED_EPOCHS:,} epochs" if step >= planned else
              f"finished: no better monitor for {stale} steps" if stale >= PATIENCE_EPOCHS * STEPS_PER_EPOCH else
              f"running: epoch {step / STEPS_PER_EPOCH:g} of at most {PLANNED_EPOCHS:,} (resume with the same command)")
    hours_at = {r["step"]: r["hours"] for r in monitor}
    chosen = {**score(run / "best.pt"), "valid_parzen": round(best["value"], 2),
              "hours": hours_at.get(best["step"])}
    print(f"chosen: epoch {chosen['epoch']:g}, test {chosen['parzen']['mean']:.1f} +- {chosen['parzen']['se']:.1f}, "
          f"copies {chosen['nearest']['copies']:.3f}", flush=True)
    why, what = (__doc__.split("\n\n")[i].replace("\n", " ") for i in (2, 3))
    doc = {"why": why, "what": what, "command": command, "machine": machine(),
           "preset": "gan2014-mnist", "overrides": OVERRIDES, "status": status, "step": step,
           "epoch": step / STEPS_PER_EPOCH, "training_hours": round(hours, 3), "paper": PAPER,
           "selection": "best.pt by the validation monitor (train[50000:60000]); the test set scores only the chosen "
                        "checkpoint (and the latest, for reference)",
           "chosen": chosen, "monitor": monitor}
    o = json.loads((run / "config.json").read_text())["optim"]
    if o["lr_g"] != o["lr_d"]:
        raise SystemExit("the trend assumes one learning rate for G and D (the preset's); this run has two")
    optim = {"lr": o["lr_d"], "lr_decay": o["lr_decay"], "min_lr": o["min_lr"]}
    logged = [r for r in rows if "lr/G" in r][-1]
    expect = lr_at(optim["lr"], logged["step"], optim["lr_decay"], optim["min_lr"])
    if abs(logged["lr/G"] - expect) > 1e-4 * expect:  # the schedule the trend integrates is the one the run logged
        raise SystemExit(f"lr/G logged at step {logged['step']} is {logged['lr/G']:.6g}, "
                         f"the schedule says {expect:.6g}")
    doc["trend"], doc["pace"] = trend(monitor, optim), pace(monitor, step)
    doc["predictions"] = predictions(result.with_name(result.stem + "-predictions.json"), monitor, doc["trend"])
    if step != best["step"]:  # for reference only: the test set picks nothing
        doc["latest"] = {**score(last), "hours": round(hours, 3)}
    before = json.loads(result.read_text()) if result.is_file() else {}
    doc["fifteen_minutes"] = before.get("fifteen_minutes", {})  # the 15-minute rows are kept
    doc["test_history"] = test_history(before.get("test_history", []), chosen)
    doc["trend"]["test_scores_on_the_lines"] = lines_at(doc["trend"], doc["test_history"])
    result.write_text(json.dumps(doc, indent=2) + "\n")
    plot(doc, result.with_suffix(".png"))
    print(f"wrote {result} and {result.with_suffix('.png')}")
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(Path.home() / "counterfeit-runs" / "gan2014-mnist-long"))
    ap.add_argument("--minutes", type=float, default=60.0, help="training time for this sitting")
    ap.add_argument("--score-only", action="store_true", help="record the run as it stands, train nothing")
    ap.add_argument("--result", default=str(HERE / "results" / "gan2014-mnist-long.json"))
    ap.add_argument("--quick", metavar="PRESET", help="instead: the 15-minute row for PRESET (e.g. vae-mnist)")
    ap.add_argument("--quick-minutes", type=float, default=15.0)
    ap.add_argument("--work", default=str(HERE / "_work" / "parzen-15min"), help="run dirs of the --quick rows")
    args = ap.parse_args(argv)
    if args.quick:
        quick(args.quick, args.quick_minutes, Path(args.work), Path(args.result))
        return 0
    run = Path(args.run)
    if not args.score_only:
        sitting(run, args.minutes)
    command = "COUNTERFEIT_DATA=../shared/datasets python -m bench.gan2014_long --minutes M (repeated)"
    record(run, Path(args.result), command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
