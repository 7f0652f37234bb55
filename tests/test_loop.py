"""The generalised loop: recipe contract, batches as dicts, old checkpoints, config checks, exit codes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from counterfeit import config
from counterfeit.checkpoint import latest_checkpoint, list_checkpoints, safe_load
from counterfeit.cli.__main__ import main
from counterfeit.data.sampler import Batches, batch_indices, epoch_order
from counterfeit.recipes import build_recipe
from counterfeit.recipes.base import Phase
from conftest import tiny_overrides, without_steps

FORMAT1 = Path(__file__).parent / "data" / "format1"


def _one_line(capsys, code, want_code, match):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == want_code and len(err) == 1 and match in err[0] and "Traceback" not in err[0], (code, err)


# ---------------------------------------------------------------------------------------------- recipe contract


def test_gan_phases_follow_the_config():
    joint = build_recipe(config.load_config("gan2014-mnist", ["model.g_hidden=[8]", "model.d_units=4"]), (1, 28, 28))
    assert joint.phases() == [Phase(("D", "G"))]
    alt = build_recipe(config.load_config("wgan-fashion", ["model.width_g=8", "model.width_d=8"]), (1, 28, 28))
    assert alt.phases() == [Phase(("D",), repeat=5), Phase(("G",), data=False, freeze=("D",))]
    groups = alt.optimizers()
    assert set(groups) == {"G", "D"} and groups["D"].nets == ("D",) and groups["D"].lr == 5e-5
    assert set(alt.nets) == {"G", "D"} and alt.nets["G"] is alt.G


def test_batches_are_the_single_process_order_and_disjoint_slices_per_rank():
    x = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 1, 2, 2).contiguous()
    y = torch.arange(20)
    one = Batches([{"x": x, "y": y}], 4, seed=3, device="cpu", to_batch=lambda k, v: v)
    drawn = [one.next() for _ in range(7)]  # 5 batches an epoch: crosses into epoch 1
    order0, order1 = epoch_order(20, 3, 0), epoch_order(20, 3, 1)
    assert torch.equal(drawn[0]["y"], order0[:4]) and torch.equal(drawn[5]["y"], order1[:4])
    assert all(torch.equal(b["x"][:, 0, 0, 0].long(), b["y"]) for b in drawn)  # fields share the index
    for i in range(5):
        parts = [batch_indices(order0, i, 4, rank, 2) for rank in range(2)]
        assert torch.equal(torch.cat(parts), order0[i * 4 : (i + 1) * 4])  # the ranks' slices make the global batch
    resumed = Batches([{"x": x, "y": y}], 4, seed=3, device="cpu", to_batch=lambda k, v: v, drawn=6)
    assert torch.equal(resumed.next()["y"], drawn[6]["y"])


def test_unpaired_domains_have_their_own_index():
    a, b = torch.arange(12), torch.arange(100, 108)  # domains of different sizes
    two = Batches([{"A": a}, {"B": b}], 4, seed=0, device="cpu", to_batch=lambda k, v: v)
    drawn = [two.next() for _ in range(6)]  # 3 batches an epoch of A, 2 of B
    assert torch.equal(drawn[0]["A"], epoch_order(12, 0, 0)[:4])  # the first group keeps the single-set order
    assert torch.equal(drawn[0]["B"], 100 + epoch_order(8, 7919, 0)[:4])
    assert torch.equal(drawn[2]["B"], 100 + epoch_order(8, 7919, 1)[:4])  # B wraps on its own
    assert torch.equal(torch.sort(torch.cat([d["A"] for d in drawn[:3]])).values, a)  # each A once an epoch
    with pytest.raises(Exception, match="differ in length"):
        Batches([{"A": a, "B": b}], 4, seed=0, device="cpu", to_batch=lambda k, v: v)


# ---------------------------------------------------------------------------------------------- old checkpoints


@pytest.mark.parametrize("name", ["gan2014", "cgan-ema"])
def test_format1_checkpoints_still_sample_the_same_images(name, tmp_path, capsys):
    """Checkpoints written before named networks (tests/data/format1, made by the code of commit e9fb6fb's parent)."""
    state = safe_load(FORMAT1 / f"{name}.pt")
    assert state["upgraded_from"] == 1 and set(state["nets"]) == {"G", "D"}
    out = tmp_path / "s.npz"
    assert main(["sample", str(FORMAT1 / f"{name}.pt"), "--n", "8", "--seed", "3", "--out", str(out)]) == 0
    with np.load(out) as got, np.load(FORMAT1 / "samples-seed3.npz") as want:
        assert np.array_equal(got["images"], want[name].transpose(0, 2, 3, 1))


def test_format1_run_resumes(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(FORMAT1 / "gan2014.pt", run / "checkpoints" / "step-00000006.pt")
    (run / "config.json").write_text(safe_load(FORMAT1 / "gan2014.pt")["config"])
    assert main(["train", str(run), "--resume", "--steps", "8", "--no-progress"]) == 0
    state = safe_load(latest_checkpoint(run))
    assert state["format"] == 2 and state["step"] == 8 and "upgraded_from" not in state


def test_format1_checkpoint_evaluates(tmp_path, capsys):
    from counterfeit.data import fetch

    try:
        fetch.locate("mnist")
    except Exception:
        pytest.skip("full MNIST is not on this machine (set COUNTERFEIT_DATA)")
    assert main(["evaluate", str(FORMAT1 / "cgan-ema.pt"), "--metrics", "classes", "--n", "200"]) == 0
    assert "classes:" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize("setting,match", [
    ("model.noise=gaussian", "model.noise: 'gaussian' is not one of uniform, normal"),
    ("data.range=0-1", "data.range: '0-1' is not one of 01, pm1"),
    ("model.activation=gelu", "model.activation: 'gelu'"),
    ("train.batch_size=0", "train.batch_size: 0 is out of range"),
    ("train.n_dis=0", "train.n_dis: 0 is out of range"),
    ("train.ema_decay=1.5", "train.ema_decay"),
])
def test_bad_settings_are_one_line_before_anything_is_written(setting, match, tmp_path, capsys):
    code = main(["train", "quickstart", "--out", str(tmp_path / "run"), "--set", setting, "--no-progress"])
    _one_line(capsys, code, 2, match)
    assert not (tmp_path / "run").exists()


def test_a_size_the_network_cannot_make_is_one_line(tmp_path, capsys):
    from PIL import Image

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(8):
        Image.fromarray(np.full((48, 48), 30 * i, np.uint8)).save(d / f"{i}.png")
    code = main(["train", "dcgan-mnist", "--data", str(d), "--out", str(tmp_path / "run"), "--steps", "1",
                 "--no-progress", "--set", "train.batch_size=4"])
    _one_line(capsys, code, 2, "cannot make 48x48 images")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- exit codes


def test_divergence_exits_3_with_one_line(tmp_path, mnist_dir, capsys):
    sets = tiny_overrides(mnist_dir, 12) + ["optim.lr_d=1e30", "optim.lr_g=1e30", "optim.momentum=0",
                                             "optim.final_momentum=0", "train.log_every=5"]
    code = main(["train", "gan2014-mnist", "--no-progress", "--out", str(tmp_path / "run"),
                 *sum([["--set", s] for s in sets], [])])
    _one_line(capsys, code, 3, "training diverged")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_finishes_the_step_writes_a_checkpoint_and_resume_is_exact(sig, code, tmp_path, mnist_dir):
    """A real process, signalled after its first checkpoint, stops at a step boundary with a checkpoint there and
    skips the preview; resumed for 10 more steps it ends with the weights of an uninterrupted run of as many steps."""
    sets = without_steps(tiny_overrides(mnist_dir)) + ["train.checkpoint_every=5", "train.sample_every=100000",
                                                 "train.log_every=100000", "train.parzen_monitor=false",
                                                 "train.threads=1"]
    argv = ["train", "gan2014-mnist", "--no-progress", *sum([["--set", s] for s in sets], [])]
    run = tmp_path / "split"
    p = subprocess.Popen([sys.executable, "-m", "counterfeit", *argv, "--out", str(run), "--steps", "100000"],
                         env={**os.environ, "COUNTERFEIT_NO_TENSORBOARD": "1"}, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not list_checkpoints(run) and time.time() < deadline and p.poll() is None:
        time.sleep(0.02)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    lines = err.strip().splitlines()
    assert p.returncode == code and len(lines) == 1 and "written (continue with --resume)" in lines[0], (p.returncode, err)
    stopped = int(safe_load(latest_checkpoint(run))["step"])
    assert 5 <= stopped < 100000 and f"at step {stopped}:" in lines[0]
    # the checkpoint did not wait for the preview (nor would it for an evaluation): only a stop by the step budget,
    # the time budget or patience draws the last step's grid
    assert not (run / "samples" / f"step-{stopped:08d}.png").exists(), sorted((run / "samples").iterdir())
    assert main([*argv, "--out", str(run), "--resume", "--steps", str(stopped + 10)]) == 0
    assert main([*argv, "--out", str(tmp_path / "full"), "--steps", str(stopped + 10)]) == 0
    a, b = safe_load(latest_checkpoint(run)), safe_load(latest_checkpoint(tmp_path / "full"))
    assert a["step"] == b["step"] == stopped + 10 and a["batches"] == b["batches"]
    for net in ("G", "D"):
        assert all(torch.equal(v, b["nets"][net][k]) for k, v in a["nets"][net].items()), net


# ---------------------------------------------------------------------------------------------- recipe state


from counterfeit.recipes.gan import GAN  # noqa: E402
from counterfeit.recipes.pool import ImagePool  # noqa: E402
from counterfeit.registry import register  # noqa: E402


@register("recipe", "test-pooled-gan")
class PooledGAN(GAN):
    """A GAN whose D sees fakes through an image pool: a recipe with state of its own."""

    def __init__(self, cfg, shape, data=None):
        super().__init__(cfg, shape, data)
        self.pool = ImagePool(8)

    def d_losses(self, real, labels):
        with torch.no_grad():
            fake = self.generate(self.sample_z(real.shape[0], real.device))
        return self._d_losses(real, None, self.pool.query(fake), None)[0]

    def state_dict(self):
        return {"pool": self.pool.state_dict()}

    def load_state_dict(self, state):
        if state:
            self.pool.load_state_dict(state["pool"])


@register("recipe", "test-pool-forgotten")
class PoolForgotten(PooledGAN):
    def load_state_dict(self, state):  # a recipe that does not restore its state: resume must then differ
        pass


def test_image_pool_semantics():
    pool = ImagePool(3)
    a = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(a), a)  # filling: returned as they are, all stored
    torch.manual_seed(0)
    b = 10 + torch.arange(16.0).view(16, 1, 1, 1)
    out = pool.query(b)
    stored = {0.0, 1.0, 2.0}
    picked = [float(v) for v in out.flatten()]
    # each is its own fake or one stored before it came (a swapped-in fake may come back out later in the query)
    assert all(v == float(b[i]) or v in stored | {float(x) for x in b[:i].flatten()} for i, v in enumerate(picked))
    assert any(v in stored for v in picked) and any(v >= 10 for v in picked)  # both kinds occur at p = 1/2
    assert len(pool.images) == 3
    again = ImagePool(0)
    again.load_state_dict(pool.state_dict())
    assert again.size == 3 and all(torch.equal(x, y) for x, y in zip(again.images, pool.images))


@pytest.mark.parametrize("recipe,same", [("test-pooled-gan", True), ("test-pool-forgotten", False)])
def test_resume_is_bit_exact_with_recipe_state(recipe, same, tmp_path, mnist_dir):
    sets = without_steps(tiny_overrides(mnist_dir)) + ["train.checkpoint_every=5", "train.simultaneous=false",
                                                        f"model.recipe={recipe}", "train.parzen_monitor=false"]
    argv = ["train", "gan2014-mnist", "--no-progress", *sum([["--set", s] for s in sets], [])]
    assert main([*argv, "--out", str(tmp_path / "full"), "--steps", "12"]) == 0
    assert main([*argv, "--out", str(tmp_path / "split"), "--steps", "6"]) == 0
    assert main([*argv, "--out", str(tmp_path / "split"), "--steps", "12", "--resume"]) == 0
    a, b = safe_load(latest_checkpoint(tmp_path / "full")), safe_load(latest_checkpoint(tmp_path / "split"))
    assert a["step"] == b["step"] == 12 and a["recipe"]["pool"]["images"].shape[0] == 8
    equal = all(torch.equal(v, b["nets"][n][k]) for n in ("G", "D") for k, v in a["nets"][n].items())
    equal = equal and torch.equal(a["recipe"]["pool"]["images"], b["recipe"]["pool"]["images"])
    assert equal == same


def test_a_second_sigterm_stops_at_once_with_143_not_130(tmp_path, mnist_dir, monkeypatch):
    """The first signal asks for a stop at the step's end; a second one stops at once, and its exit code says which
    signal it was (143 for SIGTERM, as docker stop and schedulers expect)."""
    from counterfeit.errors import Interrupted
    from counterfeit.loop import step as step_mod
    from counterfeit.loop import train as loop_train

    real = step_mod.run_step

    def signalled_twice(st, phases, autocast):
        if st.step == 3:  # inside a step, as a scheduler's two signals would land
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(st, phases, autocast)

    monkeypatch.setattr(sys.modules["counterfeit.loop.fit"], "run_step", signalled_twice)  # (loop.fit: the function)
    cfg = __import__("counterfeit").config.load_config("gan2014-mnist", tiny_overrides(mnist_dir, 12))
    with pytest.raises(Interrupted) as e:
        loop_train(cfg, tmp_path / "run", progress=False)
    assert e.value.exit_code == 143 and "interrupted at step 3" in str(e.value)
