"""Each side job of the loop run on its own, on a tiny real training state made by loop.build (no loop body): what
it writes, what it returns, when it is due, and how it refuses."""

import json
import math

import pytest
import torch
from PIL import Image

from counterfeit import config
from counterfeit.checkpoint import safe_load
from counterfeit.dist import Dist
from counterfeit.errors import Diverged
from counterfeit.hooks import (Artefacts, Best, Checkpoint, Evaluation, Evaluator, Every, Hook, Hooks, MetricsRow,
                               ParzenMonitor, Preview, monitor_data)
from counterfeit.loop import build, run_step, train
from counterfeit.loop.writer import RunWriter
from counterfeit.recipes import Losses
from counterfeit.runtime import ThreadPolicy
from conftest import tiny_overrides


def _loop(data, run, extra=()):
    """A tiny 2014 GAN's loop at step 0 in `run`, with a real writer; no step taken."""
    cfg = config.load_config("gan2014-mnist", tiny_overrides(data, 6) + list(extra))
    loop = build(cfg, run, Dist(), ThreadPolicy(1), resume=False, allow_config_change=False, progress=False)
    loop.writer = RunWriter(run, 0)
    return loop


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_hook_is_due_at_its_interval_and_at_the_last_step_unless_a_signal_skips_it():
    class Slow(Hook):
        on_signal = False

    h, slow = Hook(3), Slow(3)
    assert [s for s in range(1, 9) if h.due(s, 8)] == [3, 6, 8]
    assert slow.due(8, 8) and not slow.due(8, 8, signalled=True) and slow.due(6, 6, signalled=True)
    with pytest.raises(ValueError):
        Hook(0)


def test_metrics_row_means_the_losses_since_the_last_row_and_stops_a_diverged_run(tmp_path, mnist_dir):
    loop = _loop(mnist_dir, tmp_path / "run")
    for v in (1.0, 3.0):
        loop.meter.add({"D": Losses({"adv": torch.tensor(v)}, {"D(x)": torch.tensor(v / 4)})})
    loop.state.step = 2
    row = MetricsRow(2)(loop)
    assert (row["step"], row["loss/D/adv"], row["loss/D/total"], row["D(x)"]) == (2, 2.0, 2.0, 0.5)
    assert row["lr/D"] == loop.cfg.optim.lr_d and row["img/s"] > 0 and loop.meter.count == 0  # reset for the next
    loop.meter.add({"D": Losses({"adv": torch.tensor(float("nan"))})})
    with pytest.raises(Diverged, match="loss/D/adv"):
        MetricsRow(2)(loop)


def test_preview_writes_the_grid_and_logs_its_spread(tmp_path, mnist_dir):
    run = tmp_path / "run"
    loop = _loop(mnist_dir, run, ["model.g_init_range=1.0"])
    loop.state.step = 3
    hook = Preview(3, watch=True)
    hook.start(loop)
    row = hook(loop)
    with Image.open(run / "samples" / "step-00000003.png") as im:
        assert im.size[0] >= 4 * 28 and im.size[1] >= 4 * 28  # the 4x4 grid of train.sample_grid
    assert row["step"] == 3 and 0.05 < row["samples/spread"] < 1
    assert all(m.training for m in loop.state.recipe.nets.values())  # eval mode only while it draws


def test_parzen_monitor_scores_samples_and_keeps_the_best_step(tmp_path, mnist_dir):
    run = tmp_path / "run"
    loop = _loop(mnist_dir, run, ["train.select=parzen"])
    valid = monitor_data(loop.cfg)
    assert valid is not None and len(valid) == 20
    best = Best(run, "parzen/monitor", False)
    hook = ParzenMonitor(3, valid, best, selects=True)
    assert hook.rank_states and hook.at_start and not hook.on_signal
    row = hook(loop)
    assert math.isfinite(row["parzen/monitor"]) and row["parzen/best"] == row["parzen/monitor"]
    assert json.loads((run / "best.json").read_text())["step"] == 0 and safe_load(run / "best.pt")["step"] == 0
    again = ParzenMonitor(3, valid)(loop)  # its own random stream: the same step scores the same
    assert again["parzen/monitor"] == row["parzen/monitor"] and "parzen/best" not in again
    assert ParzenMonitor(3, None)(loop) is None  # no held-out split: nothing to log


def test_evaluation_scores_the_generator_with_the_bundled_classifier(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = tmp_path / "run"
    loop = _loop(mnist_dir, run, ["train.eval_every=3", "train.eval_samples=40", "train.eval_extractor=mnist",
                                  "train.eval_metrics=[fid,classes]"])
    hook = Evaluation(3, Evaluator(loop.cfg, run, loop.data))
    row = hook(loop)
    assert row["step"] == 0 and row["eval/fid"] > 0 and row["eval/best_fid"] == row["eval/fid"]
    assert 1 <= row["eval/classes"] <= 10
    assert json.loads((run / "best.json").read_text())["metric"] == "fid"


def test_checkpoint_writes_a_resumable_state_and_refuses_non_finite_weights(tmp_path, mnist_dir):
    run = tmp_path / "run"
    loop = _loop(mnist_dir, run)
    run_step(loop.state, loop.phases, loop.autocast)
    loop.state.step = 1
    Checkpoint(1, keep=2)(loop)
    state = safe_load(run / "checkpoints" / "step-00000001.pt")
    assert state["step"] == 1 and set(state["nets"]) == {"G", "D"} and state["batches"] == 1
    with torch.no_grad():
        next(loop.state.recipe.nets["D"].parameters()).view(-1)[0] = float("inf")
    loop.state.step = 2
    with pytest.raises(Diverged, match="non-finite weights or buffers in D at step 2"):
        Checkpoint(1, keep=2)(loop)
    assert not (run / "checkpoints" / "step-00000002.pt").exists()


def test_artefacts_are_rebuilt_at_the_last_step_and_at_most_once_per_interval_before(tmp_path, mnist_dir):
    run = tmp_path / "run"
    loop = _loop(mnist_dir, run)
    loop.state.step = 3
    Preview(3, watch=False)(loop)
    for step in (1, 2, 3):
        loop.meter.add({"D": Losses({"adv": torch.tensor(0.5 * step)}), "G": Losses({"adv": torch.tensor(1.0)})})
        loop.state.step = step
        loop.writer.log(MetricsRow(1)(loop))
    loop.writer.flush()
    hook = Artefacts(3, min_interval_s=3600)
    hook(loop)  # the first rebuild: none was made yet
    made = {n: (run / n).stat().st_mtime_ns for n in ("progress.gif", "curves.png", "report.html")}
    hook(loop)  # within the interval, not the last step: left as they are
    assert {n: (run / n).stat().st_mtime_ns for n in made} == made
    loop.state.step = loop.total
    (run / "progress.gif").unlink()
    hook(loop)  # the last step: always
    assert (run / "progress.gif").is_file()


def test_the_runner_runs_due_hooks_in_order_and_writes_their_rows_through_one_place(tmp_path, mnist_dir):
    run = tmp_path / "run"
    loop = _loop(mnist_dir, run)
    seen = []
    hooks = Hooks([Every(2, lambda lp: seen.append(("a", lp.state.step))),
                   Every(3, lambda lp: {"mine": float(lp.state.step)})])
    for step in range(1, 7):
        loop.state.step = step
        hooks.run(loop)
    loop.writer.flush()
    assert seen == [("a", 2), ("a", 4), ("a", 6)]
    assert [(r["step"], r["mine"]) for r in _rows(run)] == [(3, 3.0), (6, 6.0)]


def test_a_user_hook_passed_to_train_runs_at_its_interval_and_logs_its_row(tmp_path, mnist_dir):
    seen = []

    def tick(loop):
        seen.append((loop.state.step, loop.state.recipe.nets["G"].training))
        return {"user/step_squared": float(loop.state.step) ** 2}

    cfg = config.load_config("gan2014-mnist", tiny_overrides(mnist_dir, 6))
    train(cfg, tmp_path / "run", progress=False, hooks=[Every(4, tick)])
    assert seen == [(4, True), (6, True)]  # its interval, then the last step
    assert [(r["step"], r["user/step_squared"]) for r in _rows(tmp_path / "run") if "user/step_squared" in r] == \
        [(4, 16.0), (6, 36.0)]
