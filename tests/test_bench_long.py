"""The long 2014 GAN bench's trend (issue 17): the summed learning rate it fits against, and its predictions' checks.

These figures go into the README's account of where the faithful run is heading, so the arithmetic is checked here
against the training loop's own schedule and against monitors built to lie on a known line.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import gan2014_long as long
from counterfeit.loop import lr_at

SCHEDULE = {"lr": 0.1, "lr_decay": 1.000004, "min_lr": 1e-6}


def test_the_summed_learning_rate_is_the_loops_schedule_summed():
    cum = long.lr_epochs(**SCHEDULE, steps=3000)
    by_hand = np.cumsum([lr_at(0.1, u, 1.000004, 1e-6) for u in range(3000)]) / long.STEPS_PER_EPOCH
    assert cum[0] == 0.0 and len(cum) == 3001
    np.testing.assert_allclose(cum[1:], by_hand, rtol=1e-12)
    # the floor counts once the decay has reached it, and a constant rate sums to lr per epoch
    floor = long.lr_epochs(lr=0.1, lr_decay=2.0, min_lr=1e-3, steps=1000)
    np.testing.assert_allclose(floor[-1] - floor[-501], 1e-3, rtol=1e-9)
    flat = long.lr_epochs(lr=0.05, lr_decay=1.0, min_lr=0.0, steps=2000)
    np.testing.assert_allclose(flat[2000], 0.05 * 4, rtol=1e-12)


def monitor_on_a_line(a: float, b: float, noise: float = 0.0, until_epoch: float = 1000.0) -> list[dict]:
    cum = long.lr_epochs(**SCHEDULE, steps=long.PLANNED_EPOCHS * long.STEPS_PER_EPOCH)
    rng = np.random.default_rng(0)
    steps = np.arange(0, int(until_epoch * long.STEPS_PER_EPOCH) + 1, 5 * long.STEPS_PER_EPOCH)
    return [{"epoch": s / long.STEPS_PER_EPOCH, "step": int(s), "hours": s * 0.036 / 3600,
             "valid_parzen": float(a + b * cum[s] + noise * rng.standard_normal())} for s in steps]


def test_a_monitor_on_a_line_in_summed_lr_is_read_back_and_extrapolated_along_it():
    a, b = 150.0, 1.5
    tr = long.trend(monitor_on_a_line(a, b), SCHEDULE)
    cum_end = tr["lr_epochs_at_2000"]
    # 0.1 * (1 - 1.000004 ** -1e6) / (1 - 1 / 1.000004) / 500, the geometric sum in closed form
    closed_form = 0.1 * (1 - 1.000004 ** -1e6) / (1 - 1 / 1.000004) / 500
    assert cum_end == pytest.approx(closed_form, abs=1e-3)  # kept to 3 places
    for fit in tr["fits"].values():
        assert fit["nats_per_lr_epoch"] == pytest.approx(b, abs=2e-3)
        assert fit["a"] == pytest.approx(a, abs=0.05)
        assert fit["monitor_at_2000_epochs"] == pytest.approx(a + b * cum_end, abs=0.1)
        assert fit["residual_sd"] < 0.01
        assert fit["reaches_225_at_epoch"] is None  # 150 + 1.5 * 49.08 = 223.6
    # nats per 100 epochs now: b times the learning rate at the last monitor, times 100
    assert tr["fits"]["last 300 epochs"]["nats_per_100_epochs_now"] == pytest.approx(
        b * 0.1 * 1.000004 ** -500000 * 100, abs=0.01)
    # a steeper line crosses 225 where its summed lr says, before epoch 2,000
    tr = long.trend(monitor_on_a_line(150.0, 1.6), SCHEDULE)
    cum = long.lr_epochs(**SCHEDULE, steps=long.PLANNED_EPOCHS * long.STEPS_PER_EPOCH)
    epoch = tr["fits"][f"since epoch {long.TREND_FROM_EPOCH}"]["reaches_225_at_epoch"]
    assert epoch is not None and 1000 < epoch < 2000
    assert 150.0 + 1.6 * cum[int(epoch * long.STEPS_PER_EPOCH)] == pytest.approx(225, abs=0.05)
    # lines in epochs ignore the decay and overshoot a monitor that follows it
    ignoring = tr["epoch_fits_ignoring_the_decay"]["line in epochs, last 300 epochs"]
    assert ignoring["monitor_at_2000_epochs"] > 150.0 + 1.6 * cum[-1] + 5


def test_a_prediction_is_kept_once_per_step_and_checked_against_the_monitors_after_it(tmp_path):
    path = tmp_path / "predictions.json"
    early = monitor_on_a_line(150.0, 1.5, noise=1.0, until_epoch=800)
    items = long.predictions(path, early, long.trend(early, SCHEDULE))
    assert len(items) == 1 and items[0]["made_at_step"] == 400000 and "check" not in items[0]
    assert long.predictions(path, early, long.trend(early, SCHEDULE)) == json.loads(path.read_text())
    assert len(json.loads(path.read_text())) == 1  # the same step is not predicted twice
    # the run went on along the same line: the old lines' residuals on the new monitors are small
    later = monitor_on_a_line(150.0, 1.5, noise=1.0, until_epoch=1000)
    items = long.predictions(path, later, long.trend(later, SCHEDULE))
    assert [p["made_at_step"] for p in items] == [400000, 500000]
    check = items[0]["check"]
    assert check["monitors"] == 40 and check["epochs"] == [805.0, 1000.0]
    for line in check["lines"].values():
        assert abs(line["mean_residual"]) < 1.0
    # a run that flattened below the line shows up as a negative residual
    flat = [dict(r, valid_parzen=r["valid_parzen"] - (5.0 if r["epoch"] > 800 else 0.0)) for r in later]
    items = long.predictions(tmp_path / "other.json", early, long.trend(early, SCHEDULE))
    items = long.predictions(tmp_path / "other.json", flat, long.trend(flat, SCHEDULE))
    for line in items[0]["check"]["lines"].values():
        assert line["mean_residual"] == pytest.approx(-5.0, abs=1.0)


def test_the_test_history_keeps_one_score_per_chosen_step_in_step_order():
    def chosen(step, mean):
        return {"step": step, "epoch": step / 500, "hours": step * 1e-5, "valid_parzen": mean + 1,
                "parzen": {"mean": mean, "se": 2.0}, "nearest": {"copies": 0.001, "ratio": 1.0}}

    h = long.test_history([], chosen(5000, 150.0))
    h = long.test_history(h, chosen(2500, 140.0))  # a record of an older checkpoint still sorts by step
    h = long.test_history(h, chosen(5000, 151.0))  # the same checkpoint scored again replaces its row
    assert [(r["step"], r["test_parzen"]) for r in h] == [(2500, 140.0), (5000, 151.0)]


def test_test_scores_are_set_beside_each_lines_value_only_where_the_line_was_fitted():
    tr = long.trend(monitor_on_a_line(150.0, 1.5), SCHEDULE)
    cum = long.lr_epochs(**SCHEDULE, steps=long.PLANNED_EPOCHS * long.STEPS_PER_EPOCH)
    rows = [{"step": s, "epoch": s / 500, "test_parzen": 0.0, "valid_parzen": 0.0} for s in (50000, 450000)]
    early, late = long.lines_at(tr, rows)
    assert set(early) == {"epoch", "test_parzen", "valid_parzen"}  # epoch 100: before either window
    assert late["since epoch 250"] == pytest.approx(150.0 + 1.5 * cum[450000], abs=0.06)
    assert late["last 300 epochs"] == pytest.approx(150.0 + 1.5 * cum[450000], abs=0.06)
