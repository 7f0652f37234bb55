import json
import math

import pytest
import torch

from counterfeit import config
from counterfeit.checkpoint import list_checkpoints, safe_load
from counterfeit.cli.__main__ import main
from counterfeit.errors import Diverged, UserError
from counterfeit.recipes import build_recipe
from counterfeit.loop import linear_decay, lr_at, momentum_at, train
from conftest import tiny_overrides, without_steps


def _cfg(data, extra=(), steps=6):
    return config.load_config("gan2014-mnist", tiny_overrides(data, steps) + list(extra))


@pytest.mark.parametrize("extra", [[], ["train.simultaneous=false", "train.n_dis=2"], ["loss.g_loss=minimax"],
                                   ["train.precision=bf16"], ["train.precision=bf16", "train.simultaneous=false"]],
                         ids=["joint", "alternating-k2", "minimax", "bf16-joint", "bf16-alternating"])
def test_one_step_changes_both_networks_and_losses_are_finite(tmp_path, mnist_dir, extra):
    cfg = _cfg(mnist_dir, extra, steps=1)
    torch.manual_seed(cfg.train.seed)
    before = build_recipe(cfg, (1, 28, 28), None)
    res = train(cfg, tmp_path / "run", progress=False)
    state = safe_load(res.checkpoint)
    for net in ("G", "D"):
        fresh = getattr(before, net).state_dict()
        changed = [k for k, v in state["nets"][net].items() if k in fresh and not torch.equal(v, fresh[k])]
        assert changed, f"{net} did not change"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["step"] == 1 and "img/s" in r)  # the metrics row (the preview's are apart)
    assert all(math.isfinite(v) for k, v in row.items() if k.startswith("loss/"))
    assert {"loss/D/adv", "loss/G/adv", "D(x)", "D(G(z))", "lr/D", "img/s"} <= set(row)


def test_bf16_autocast_is_engaged_and_keeps_fp32_weights(tmp_path, mnist_dir):
    runs = {}
    for prec in ("fp32", "bf16"):
        res = train(_cfg(mnist_dir, [f"train.precision={prec}"], steps=3), tmp_path / prec, progress=False)
        runs[prec] = safe_load(res.checkpoint)["nets"]["G"]
    assert all(v.dtype == torch.float32 for v in runs["bf16"].values() if v.is_floating_point())
    diff = max((runs["bf16"][k] - runs["fp32"][k]).abs().max().item() for k in runs["fp32"])
    assert 0 < diff < 0.05  # bf16 matmuls change the numbers a little, not the training


def test_unknown_precision_is_refused(tmp_path, mnist_dir):
    with pytest.raises(UserError, match="precision"):
        train(_cfg(mnist_dir, ["train.precision=fp16"], steps=1), tmp_path / "run", progress=False)


def test_alternating_mode_takes_k_d_steps_per_g_step(tmp_path, mnist_dir):
    cfg = _cfg(mnist_dir, ["train.simultaneous=false", "train.n_dis=3"], steps=2)
    train(cfg, tmp_path / "run", progress=False)
    state = safe_load(list_checkpoints(tmp_path / "run")[-1][1])
    assert state["batches"] == 6  # 2 G steps x 3 D steps, one minibatch each
    assert state["opts"]["D"]["state"][0]["momentum_buffer"] is not None


def _weights(run):
    return safe_load(list_checkpoints(run)[-1][1])


@pytest.mark.parametrize("mode", [[], ["train.simultaneous=false", "train.n_dis=2"]], ids=["joint", "alternating"])
def test_resume_is_bit_for_bit(tmp_path, mnist_dir, mode):
    # uninterrupted 2N steps
    base = without_steps(tiny_overrides(mnist_dir, 12)) + ["train.checkpoint_every=5"] + mode
    sets = sum([["--set", s] for s in base], [])
    assert main(["train", "gan2014-mnist", "--no-progress", "--out", str(tmp_path / "full"), *sets, "--steps", "12"]) == 0
    # N steps, stop, resume to 2N (the stop falls between checkpoint ticks: checkpoint_every=5, N=6)
    assert main(["train", "gan2014-mnist", "--no-progress", "--out", str(tmp_path / "split"), *sets, "--steps", "6"]) == 0
    assert main(["train", "gan2014-mnist", "--no-progress", "--out", str(tmp_path / "split"), *sets, "--steps", "12",
                 "--resume"]) == 0
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert a["step"] == b["step"] == 12 and a["batches"] == b["batches"]
    for net in ("G", "D"):
        for k in a["nets"][net]:
            assert torch.equal(a["nets"][net][k], b["nets"][net][k]), f"{net}.{k} differs after resume"
    for opt in ("G", "D"):
        for i, s in a["opts"][opt]["state"].items():
            assert torch.equal(s["momentum_buffer"], b["opts"][opt]["state"][i]["momentum_buffer"])
    assert torch.equal(a["rng_cpu"], b["rng_cpu"])
    # the resumed run's log has each step once
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
             if "loss/D/adv" in line]
    assert steps == sorted(set(steps)) and steps[-1] == 12


def test_run_dir_contents(tmp_path, mnist_dir):
    res = train(_cfg(mnist_dir, steps=6), tmp_path / "run", progress=False)
    run = res.run_dir
    for name in ("config.json", "metrics.jsonl", "progress.gif", "curves.png"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000000.png", "step-00000003.png",
                                                                   "step-00000006.png"]
    assert any((run / "tb").iterdir())
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 6
    monitor = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if "parzen/monitor" in line]
    assert len(monitor) == 3 and all(math.isfinite(r["parzen/monitor"]) for r in monitor)


def test_refuses_to_overwrite_or_resume_with_another_config(tmp_path, mnist_dir):
    train(_cfg(mnist_dir, steps=3), tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_bytes()
    with pytest.raises(UserError, match="already holds a run"):
        train(_cfg(mnist_dir, steps=3), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="config differs.*optim.lr_d"):
        train(_cfg(mnist_dir, ["optim.lr_d=0.01"], steps=6), tmp_path / "run", resume=True, progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_bytes() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an empty folder"):
        train(_cfg(mnist_dir, steps=3), tmp_path / "other", progress=False)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_schedules_follow_pylearn2():
    assert lr_at(0.1, 0, 1.000004, 1e-6) == 0.1
    assert math.isclose(lr_at(0.1, 1000, 1.000004, 1e-6), 0.1 / 1.000004**1000, rel_tol=1e-12)
    assert lr_at(0.1, 10**9, 1.000004, 1e-6) == 1e-6
    o = config.load_config("gan2014-mnist").optim
    assert momentum_at(o, 0) == 0.5
    assert math.isclose(momentum_at(o, 124), 0.5 + 0.2 * 124 / 249)
    assert math.isclose(momentum_at(o, 249), 0.7) and momentum_at(o, 400) == 0.7


def test_linear_decay_to_zero_after_its_start(tmp_path, mnist_dir):
    assert linear_decay(3, 0, 10) == 1.0 and linear_decay(4, 5, 10) == 1.0  # off, or not started yet
    assert math.isclose(linear_decay(7, 5, 10), 0.6) and linear_decay(10, 5, 10) == 0.0
    cfg = _cfg(mnist_dir, ["optim.linear_decay_start=4", "optim.lr_decay=1.0", "train.log_every=1"], steps=8)
    train(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lr = {r["step"]: r["lr/G"] for r in rows if "lr/G" in r}
    # each row logs the lr of the update that produced it: update s runs at G step s - 1
    assert sorted(lr) == list(range(1, 9))
    assert all(math.isclose(lr[s], cfg.optim.lr_g * linear_decay(s - 1, 4, 8)) for s in lr)
    assert lr[5] == cfg.optim.lr_g and math.isclose(lr[7], cfg.optim.lr_g / 2) and lr[8] < lr[7]


def test_divergence_is_one_clear_error_and_keeps_good_checkpoints(tmp_path, mnist_dir):
    # log every 5 steps, checkpoint every 3: the guard must hold whichever tick sees the damage first
    cfg = _cfg(mnist_dir, ["optim.lr_d=1e30", "optim.lr_g=1e30", "optim.momentum=0", "optim.final_momentum=0",
                           "train.log_every=5"], steps=12)
    with pytest.raises(Diverged, match="training diverged: .*(not finite|non-finite).*last good checkpoint"):
        train(cfg, tmp_path / "run", progress=False)
    for _, p in list_checkpoints(tmp_path / "run"):
        state = safe_load(p)
        assert all(torch.isfinite(v).all() for net in state["nets"].values() for v in net.values()
                   if v.is_floating_point())


def test_time_budget_stops_early_with_a_final_checkpoint(tmp_path, mnist_dir):
    cfg = _cfg(mnist_dir, ["train.max_minutes=0.0005"], steps=100000)  # 0.03 s
    res = train(cfg, tmp_path / "run", progress=False)
    assert 0 < res.step < 100000
    assert list_checkpoints(tmp_path / "run")[-1][0] == res.step
    assert safe_load(res.checkpoint)["step"] == res.step


def test_evaluation_during_training_tracks_the_best_checkpoint(tmp_path, mnist_dir, monkeypatch):
    from counterfeit.metrics.features import manifest

    if "mnist" not in manifest():
        pytest.skip("no bundled MNIST classifier")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = _cfg(mnist_dir, ["train.eval_every=3", "train.eval_samples=200", "train.eval_extractor=mnist",
                           "train.eval_metrics=[fid, pr, classes]"], steps=9)
    train(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/fid" in r]
    assert [r["step"] for r in evals] == [3, 6, 9]
    assert all(0 <= r["eval/precision"] <= 1 and 0 <= r["eval/classes"] <= 10 for r in evals)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    fids = {r["step"]: r["eval/fid"] for r in evals}
    assert best["value"] == min(fids.values()) and fids[best["step"]] == best["value"]
    assert evals[-1]["eval/best_fid"] == best["value"]
    state = safe_load(tmp_path / "run" / "best.pt")
    assert state["step"] == best["step"]
    from counterfeit.sampling import generate, load_generator

    recipe, _, info = load_generator(tmp_path / "run" / "best.pt")
    assert info["step"] == best["step"] and generate(recipe, 4).shape == (4, 1, 28, 28)


def test_bad_evaluation_settings_fail_before_the_run_dir_is_touched(tmp_path, mnist_dir):
    cfg = _cfg(mnist_dir, ["train.eval_every=3", "train.eval_metrics=[pr]", "train.eval_extractor=mnist"])
    with pytest.raises(UserError, match="to pick the best step"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_parzen_selection_keeps_the_best_monitor_step_and_patience_stops_the_run(tmp_path, mnist_dir):
    """train.select=parzen: best.pt / best.json hold the sample tick with the highest Parzen monitor on validation
    images; train.patience stops the run exactly `patience` steps after the best tick when no tick beats it (the stop
    step's own tick runs too, and may still win)."""
    run = tmp_path / "run"
    res = train(_cfg(mnist_dir, ["train.select=parzen", "train.sample_every=2", "train.patience=4"], steps=400), run,
                progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    mon = {r["step"]: r["parzen/monitor"] for r in rows if "parzen/monitor" in r}
    assert res.step < 400 and max(mon) == res.step  # stopped early, with a last monitor tick at the stop
    before = {s: v for s, v in mon.items() if s < res.step}
    first_best = max(before, key=lambda s: (before[s], -s))  # the earliest step with the highest value
    assert res.step == first_best + 4 and all(v <= before[first_best] for v in before.values())
    best = json.loads((run / "best.json").read_text())
    assert best["metric"] == "parzen/monitor" and best["value"] == max(mon.values()) and mon[best["step"]] == best["value"]
    assert safe_load(run / "best.pt")["step"] == best["step"]
    assert rows[-1]["step"] == res.step and safe_load(res.checkpoint)["step"] == res.step  # a final checkpoint


def test_an_early_stop_names_the_best_after_the_last_steps_own_tick(tmp_path, mnist_dir, capsys):
    """The line that says why a run stopped early names the best step after the stop step's hooks ran: that step's
    own monitor tick can still win (on the Zen 4 EPYC this was written on, it does here: step 2 beats step 0; where
    it does not, the check still holds but cannot tell the old loop from the new), and the line must name what
    best.pt then holds."""
    run = tmp_path / "run"
    res = train(_cfg(mnist_dir, ["train.select=parzen", "train.sample_every=2", "train.patience=2"], steps=400), run,
                progress=False)
    best = json.loads((run / "best.json").read_text())
    said = [line for line in capsys.readouterr().err.splitlines() if "(train.patience)" in line]
    assert said == [f"no better parzen/monitor for 2 steps (train.patience): stopped at step {res.step}; "
                    f"the best, {best['value']:.4g} at step {best['step']}, is in best.pt"]


def test_the_best_step_is_read_back_on_resume(tmp_path, mnist_dir):
    """A resumed run competes with the best of its earlier sittings: a lower score after --resume keeps best.pt."""
    from counterfeit.hooks import Best

    run = tmp_path / "run"
    train(_cfg(mnist_dir, ["train.select=parzen"], steps=6), run, progress=False)
    saved = json.loads((run / "best.json").read_text())
    best = Best(run, "parzen/monitor", False)
    assert (best.value, best.step) == (saved["value"], saved["step"]) and best.stale(saved["step"] + 7) == 7
    pt = (run / "best.pt").read_bytes()
    assert not best.offer(saved["value"] - 1.0, 99, lambda: pytest.fail("a worse step was written"))
    assert (run / "best.pt").read_bytes() == pt and json.loads((run / "best.json").read_text()) == saved
    assert Best(run, "fid", True).value is None  # a best by another score starts afresh
    train(_cfg(mnist_dir, ["train.select=parzen"], steps=12), run, resume=True, progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert json.loads((run / "best.json").read_text())["value"] == max(r["parzen/monitor"] for r in rows
                                                                         if "parzen/monitor" in r)


def test_with_parzen_selection_the_classifier_evaluation_only_logs(tmp_path, mnist_dir, monkeypatch):
    """train.select=parzen beside train.eval_every: the Parzen monitor alone keeps best.pt; the classifier's scores are
    logged (and need no fid/kid/is to pick with)."""
    from counterfeit.metrics.features import manifest

    if "mnist" not in manifest():
        pytest.skip("no bundled MNIST classifier")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = _cfg(mnist_dir, ["train.select=parzen", "train.eval_every=3", "train.eval_samples=200",
                           "train.eval_extractor=mnist", "train.eval_metrics=[pr, classes]"], steps=6)
    train(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/precision" in r]
    assert [r["step"] for r in evals] == [3, 6] and not any(k.startswith("eval/best_") for r in evals for k in r)
    best = json.loads((tmp_path / "run" / "best.json").read_text())
    mon = {r["step"]: r["parzen/monitor"] for r in rows if "parzen/monitor" in r}
    assert best["metric"] == "parzen/monitor" and best["value"] == max(mon.values())


@pytest.mark.parametrize("extra,match", [
    (["train.select=parzen", "train.parzen_monitor=false"], "needs train.parzen_monitor=true"),
    (["train.patience=10"], "needs train.eval_every > 0"),
    (["train.select=best"], "is not one of eval, parzen"),
    (["train.patience=-1"], "out of range"),
], ids=["parzen-without-monitor", "patience-without-score", "unknown-selector", "negative-patience"])
def test_selection_settings_that_cannot_work_are_refused_before_the_run_dir(tmp_path, mnist_dir, extra, match):
    with pytest.raises(UserError, match=match):
        train(_cfg(mnist_dir, extra), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_parzen_selection_needs_images_from_noise(tmp_path):
    cfg = config.load_config("toy2d-gan", ["train.steps=3", "train.select=parzen", "train.parzen_monitor=true"])
    with pytest.raises(UserError, match="train.select=parzen needs the Parzen monitor"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("preset", ["gan2014-mnist", "cgan-mnist"])
def test_each_ranks_share_of_the_samples_makes_up_the_whole(preset):
    """generate(part=(rank, world)): the shares of 3 ranks, in rank order, are the samples one process makes (noise
    and labels drawn whole, G run on the rank's rows; batches of 7 cut the shares mid-batch), and each is its size."""
    from counterfeit.recipes import build_recipe
    from counterfeit.sampling import generate

    cfg = config.load_config(preset, ["model.width_g=8", "model.width_d=8", "model.g_hidden=[16, 16]"]
                             if preset == "cgan-mnist" else ["model.g_hidden=[16, 16]"])
    recipe = build_recipe(cfg, (1, 28, 28), None)
    for net in recipe.nets.values():
        net.eval()  # as in training's evaluation (BatchNorm on its running statistics)
    whole = generate(recipe, 50, seed=4, batch=7)
    parts = [generate(recipe, 50, seed=4, batch=7, part=(r, 3)) for r in range(3)]
    assert [len(p) for p in parts] == [16, 17, 17]
    assert torch.equal(torch.cat(parts), whole)
    assert not torch.equal(parts[0], parts[1][:16])  # the shares are different samples


def test_a_collapse_onto_one_image_is_logged_and_warned_once(tmp_path, mnist_dir, digits, capsys):
    """samples/spread is logged with every preview of a real run; the watch warns when the spread falls below a tenth
    of the best the run had (real digits, then one digit repeated: what a frozen G draws), once, and never for a G
    that has not spread yet (its first samples are all alike)."""
    from counterfeit.hooks import CollapseWatch

    cfg = _cfg(mnist_dir, ["model.g_init_range=1.0"], steps=6)  # wide first weights: the samples differ from step 0
    train(cfg, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    spreads = {r["step"]: r["samples/spread"] for r in rows if "samples/spread" in r}
    assert sorted(spreads) == [0, 3, 6] and all(v > 0.05 for v in spreads.values())
    assert "collapsed" not in capsys.readouterr().err

    real, frozen = digits.x[:16], digits.x[:1].repeat(16, 1, 1, 1)
    young = (digits.x[:16].float() * 0.02 + 100).to(torch.uint8)  # near-constant, as an untrained G's grid
    watch = CollapseWatch(None)
    assert watch(young, 0)[1] is None and watch(frozen, 1) == (0.0, None)  # never spread: nothing to lose
    spread, warning = watch(real, 2)
    assert spread > 0.1 and warning is None
    spread, warning = watch(frozen, 3)
    assert spread == 0.0 and "step 3: G's samples have collapsed" in warning
    assert watch(frozen, 4)[1] is None  # once
    # resumed: the run's best spread comes back from metrics.jsonl, so a collapse after --resume is still seen
    resumed = CollapseWatch(tmp_path / "run" / "metrics.jsonl")
    assert resumed.best == max(v for step, v in spreads.items() if step)  # the untrained G's grid is not a level
    assert "collapsed" in resumed(frozen, 7)[1]


def test_a_collapse_onto_one_kind_of_image_is_warned_at_the_second_low_preview_in_a_row(tmp_path, digits):
    """A G that collapses onto one digit keeps some spread (the README's main job, 16-bit masks, seed 2: 0.12-0.51 of
    its best from step 2,500 on, never under a tenth): the watch warns once the spread has stayed under half the
    best for two previews in a row, not at one low preview, and not for a healthy dip (0.74 of the best; seeds 0-7
    of that job in bench/results/quickstart-seeds.json dipped to 0.51 at one preview, 0.72 and 0.76 at two in a
    row). A resumed run counts the low previews it had."""
    from counterfeit.hooks import CollapseWatch

    real = digits.x[:16]
    one = digits.x[:1].repeat(16, 1, 1, 1)

    def shrunk(share):  # the real grid pulled toward one digit: its spread times `share`
        return (one.float() + share * (real.float() - one.float())).round().to(torch.uint8)

    # a G whose untrained grid is already wide (batch norm over the noise: ssgan's G at step 0, spread 0.11, then
    # 0.04 as it learns, 0.09 by step 1,800): its first samples are not a level the run must keep
    wide = CollapseWatch(None)
    assert [wide(x, step)[1] for step, x in [(0, real), (300, shrunk(0.3)), (600, shrunk(0.3))]] == [None] * 3
    assert wide(real, 900)[1] is None and "step 1500: G's samples have" in wide(one, 1500)[1]  # gained, then lost

    watch = CollapseWatch(None)
    best = watch(real, 1)[0]
    spread, warning = watch(shrunk(0.74), 2)
    assert abs(spread / best - 0.74) < 0.01 and warning is None  # a healthy dip
    assert watch(shrunk(0.3), 3)[1] is None  # one low preview
    assert watch(shrunk(0.9), 4)[1] is None  # recovered: the count starts again
    assert watch(shrunk(0.3), 5)[1] is None
    spread, warning = watch(shrunk(0.3), 6)
    assert 0.1 < spread / best < 0.5
    assert "step 6: G's samples have lost most of their variety (2 previews in a row under half" in warning
    assert watch(shrunk(0.3), 7)[1] is None and watch(one, 8)[1] is None  # once, whichever kind came first

    metrics = tmp_path / "metrics.jsonl"  # a run stopped after one low preview, then resumed
    metrics.write_text("".join(json.dumps({"step": s, "samples/spread": v}) + "\n"
                               for s, v in [(0, 0.009), (500, best), (1000, 0.3 * best)]))
    resumed = CollapseWatch(metrics)
    assert resumed.best == best and resumed.lows == 1
    assert "lost most of their variety" in resumed(shrunk(0.3), 1500)[1]


def test_a_run_that_never_gets_going_is_told_so_whatever_the_data(tmp_path, mnist_dir, capsys):
    """G frozen at its first weights (lr 0): its samples stay alike, far under the data's own spread; a quarter
    into the run (and at least 200 steps in) the watch says so, once. The same run with G learning stays quiet."""
    frozen = _cfg(mnist_dir, ["optim.lr_g=0", "train.sample_every=40", "train.log_every=40",
                              "train.checkpoint_every=1000"], steps=240)
    train(frozen, tmp_path / "frozen", progress=False)
    said = [line for line in capsys.readouterr().err.splitlines() if "not got going" in line]
    assert len(said) == 1 and said[0].startswith("warning: step 200: G's samples are still nearly all alike")
    moving = _cfg(mnist_dir, ["model.g_init_range=1.0", "train.sample_every=40", "train.log_every=40",
                              "train.checkpoint_every=1000"], steps=240)
    train(moving, tmp_path / "moving", progress=False)
    assert "not got going" not in capsys.readouterr().err


def test_a_signal_during_an_evaluation_abandons_it_and_checkpoints_at_the_next_step(tmp_path, mnist_dir, monkeypatch,
                                                                                     capsys):
    """SIGTERM while an evaluation draws its samples: the evaluation stops between batches instead of running to its
    end (minutes on a real run), and the run checkpoints one step later and exits 143."""
    import os
    import signal

    from counterfeit import sampling
    from counterfeit.errors import Interrupted
    from counterfeit.metrics.features import manifest

    if "mnist" not in manifest():
        pytest.skip("no bundled MNIST classifier")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real = sampling.generate
    calls = []

    def signalled(*a, **k):
        calls.append(k.get("stop"))
        if len(calls) == 2:  # the second evaluation, at step 6
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)

    monkeypatch.setattr(sampling, "generate", signalled)
    cfg = _cfg(mnist_dir, ["train.eval_every=3", "train.eval_samples=1000", "train.eval_extractor=mnist",
                           "train.eval_metrics=[fid]", "train.checkpoint_every=100"], steps=12)
    with pytest.raises(Interrupted) as e:
        train(cfg, tmp_path / "run", progress=False)
    assert e.value.exit_code == 143 and "SIGTERM at step 7" in str(e.value)
    assert "evaluation at step 6 abandoned" in capsys.readouterr().err
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/fid" in r] == [3]
    assert list_checkpoints(tmp_path / "run")[-1][0] == 7
