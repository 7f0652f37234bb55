"""Learned approximate inference (issue 34): an encoder E for a trained G, its measures and `counterfeit invert`."""

import json

import numpy as np
import pytest
import torch

import counterfeit as cf
from conftest import tiny_overrides
from counterfeit.checkpoint import latest_checkpoint, list_checkpoints, safe_load
from counterfeit.cli.__main__ import main
from counterfeit.config import parse_override
from counterfeit.metrics.inference import linear_probe


def _sets(items) -> dict:
    return {".".join(k): v for k, v in map(parse_override, items)}


def _source(tmp_path, data, extra=(), name="src"):
    """A tiny trained 2014 GAN (6 steps) to invert."""
    sets = _sets([o for o in tiny_overrides(data) if not o.startswith(("train.steps", "train.epochs"))])
    sets.update(_sets(["train.parzen_monitor=false", *extra]))
    return cf.train("gan2014-mnist", out=tmp_path / name, steps=6, overrides=sets, progress=False)


def _encoder(tmp_path, src, steps=20, extra=(), name="enc"):
    sets = _sets(["train.batch_size=32", "train.sample_every=10", "train.checkpoint_every=10", "train.log_every=5",
                  "model.e_hidden=[64]", "train.sample_grid=4", *extra])
    sets["model.from_run"] = str(src.path)
    return cf.train("encoder", out=tmp_path / name, steps=steps, overrides=sets, progress=False)


def _rows(run):
    return [json.loads(x) for x in (run.path / "metrics.jsonl").read_text().splitlines()]


def test_an_encoder_recovers_z_of_a_near_linear_generator(tmp_path, mnist_dir):
    """A G with no hidden layer (sigmoid of a random linear map of an 8-d z into 784 pixels) is injective and its
    inverse is known: E must learn it. The latent error starts at z's own scale (1) and ends far below it."""
    src = _source(tmp_path, mnist_dir, ["model.g_hidden=[]", "model.z_dim=8", "model.g_init_range=0.5"])
    enc = _encoder(tmp_path, src, steps=300, extra=["model.e_hidden=[256]", "train.log_every=20",
                                                    "train.sample_every=300", "train.checkpoint_every=300"])
    rmse = [r["z rmse"] for r in _rows(enc) if "z rmse" in r]
    assert rmse[0] > 0.5 and rmse[-1] < 0.1, rmse
    z = enc.recipe.sample_z(64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        z_hat = enc.recipe.encode(enc.generator(z))
    assert (z_hat - z).pow(2).mean().sqrt() < 0.1


def test_the_encoder_takes_data_and_z_from_its_source_and_g_stays_fixed(tmp_path, mnist_dir):
    src = _source(tmp_path, mnist_dir)
    g_before = {k: v.clone() for k, v in src.generator.state_dict().items()}
    enc = _encoder(tmp_path, src)
    cfg = enc.config
    assert cfg.data.name == src.config.data.name and cfg.model.z_dim == src.config.model.z_dim
    assert cfg.model.noise == "uniform" and cfg.model.encoder == "mlp-e"
    # E's checkpoint holds E alone and the source's step; the source's G is untouched
    state = safe_load(latest_checkpoint(enc.path))
    assert set(state["nets"]) == {"E"} and state["recipe"] == {"source_step": 6}
    assert all(torch.equal(v, g_before[k]) for k, v in cf.load(src.path).generator.state_dict().items())
    # one step changes every layer of E (checkpoints after steps 1 and 2)
    two = _encoder(tmp_path, src, steps=2, name="two", extra=["train.checkpoint_every=1", "train.keep_checkpoints=0"])
    (_, a), (_, b) = list_checkpoints(two.path)[-2:]
    a, b = safe_load(a)["nets"]["E"], safe_load(b)["nets"]["E"]
    assert all(not torch.equal(a[k], b[k]) for k in a)


def test_resuming_an_encoder_is_bit_exact(tmp_path, mnist_dir):
    src = _source(tmp_path, mnist_dir)
    whole = _encoder(tmp_path, src, steps=20, name="whole")
    half = _encoder(tmp_path, src, steps=10, name="half")
    half = half.train(steps=20)
    a, b = safe_load(latest_checkpoint(whole.path)), safe_load(latest_checkpoint(half.path))
    assert a["step"] == b["step"] == 20
    assert all(torch.equal(a["nets"]["E"][k], b["nets"]["E"][k]) for k in a["nets"]["E"])


def test_refusals_of_the_encoder_recipe(tmp_path, mnist_dir, capsys):
    assert main(["train", "encoder", "--out", str(tmp_path / "e")]) == 2
    assert "--from RUN" in capsys.readouterr().err and not (tmp_path / "e").exists()
    assert main(["train", "encoder", "--from", str(tmp_path / "nowhere"), "--out", str(tmp_path / "e1")]) == 2
    assert "no such run dir" in capsys.readouterr().err and not (tmp_path / "e1").exists()
    src = _source(tmp_path, mnist_dir)
    assert main(["train", "encoder", "--from", str(src.path), "--set", "train.parzen_monitor=true",
                 "--out", str(tmp_path / "e2")]) == 2
    assert "Parzen monitor" in capsys.readouterr().err and not (tmp_path / "e2").exists()
    assert main(["train", "quickstart", "--from", str(src.path), "--out", str(tmp_path / "e3")]) == 2
    assert "goes with the preset encoder" in capsys.readouterr().err and not (tmp_path / "e3").exists()
    cond = cf.train("cgan-mnist", out=tmp_path / "cond", steps=1, data=str(mnist_dir), progress=False,
                    overrides={"train.batch_size": 8, "model.width_g": 8, "model.width_d": 8, "train.sample_grid": 2})
    capsys.readouterr()
    assert main(["train", "encoder", "--from", str(cond.path), "--out", str(tmp_path / "e4")]) == 2
    assert "(conditional) has no unconditional G(z)" in capsys.readouterr().err and not (tmp_path / "e4").exists()
    # the encoder names the source's checkpoint: a source trained on afterwards leaves the encoder's G as it was
    enc = _encoder(tmp_path, src, steps=5)
    assert enc.config.model.from_run.endswith("step-00000006.pt")
    src.train(steps=8)
    assert cf.load(enc.path).recipe.source_step == 6
    # a checkpoint of another step put in its place: the encoder is stale, and loading it says so in one line
    import shutil

    shutil.copy(latest_checkpoint(src.path), enc.config.model.from_run)
    capsys.readouterr()
    assert main(["invert", str(enc.path), "--input", str(tmp_path / "x.npz"), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert "its G has changed" in err and len(err.strip().splitlines()) == 1


def test_invert_writes_codes_and_reconstructions_and_refuses_a_run_without_an_encoder(tmp_path, mnist_dir, digits):
    src = _source(tmp_path, mnist_dir)
    enc = _encoder(tmp_path, src)
    x = digits.x[:5]
    np.savez(tmp_path / "in.npz", images=x.permute(0, 2, 3, 1).numpy())
    assert main(["invert", str(enc.path), "--input", str(tmp_path / "in.npz"), "--out", str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as d:
        assert d["images"].shape == (5, 28, 28, 1) and d["z"].shape == (5, 8)
        assert np.allclose(d["z"], enc.encode(x).numpy(), atol=1e-6)
        assert np.array_equal(d["images"], enc.reconstruct(x).permute(0, 2, 3, 1).numpy())
    assert main(["invert", str(enc.path), "--input", str(tmp_path / "in.npz"), "--out", str(tmp_path / "pngs")]) == 0
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    before = {p: p.read_bytes() for p in src.path.rglob("*") if p.is_file()}
    assert main(["invert", str(src.path), "--input", str(tmp_path / "in.npz"), "--out", str(tmp_path / "x.npz")]) == 2
    assert {p: p.read_bytes() for p in src.path.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "x.npz").exists()
    with pytest.raises(cf.UserError, match="has no encoder"):
        src.encode(x)


def test_recon_and_probe_score_an_encoder(tmp_path, mnist_dir):
    src = _source(tmp_path, mnist_dir)
    enc = _encoder(tmp_path, src)
    r = enc.evaluate(["recon", "probe"], n=100)
    assert r["recon"]["n"] == 100 and 0 < r["recon"]["l1"] < 1
    assert r["probe"]["n_train"] == 400 and r["probe"]["n_test"] == 200 and r["probe"]["dim"] == 8
    assert 0.0 <= r["probe"]["accuracy"] <= 1.0
    with pytest.raises(cf.UserError, match="need a run with an encoder"):
        src.evaluate(["recon"], n=10)


def test_the_linear_probe_separates_what_is_linearly_separable():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(3, (600,), generator=g)
    centres = torch.tensor([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 4.0]])
    f = centres[y] + torch.randn(600, 3, generator=g)
    assert linear_probe(f[:400], y[:400], f[400:], y[400:]) > 0.95
    noise = torch.randn(600, 3, generator=g)  # no information: chance
    assert linear_probe(noise[:400], y[:400], noise[400:], y[400:]) < 0.5


# ---------------------------------------------------------------------------------------------- BiGAN / ALI

BIGAN_SMALL = ["model.width_g=32", "model.width_e=32", "model.width_d=32", "train.batch_size=16",
               "train.sample_every=10", "train.checkpoint_every=10", "train.log_every=5", "train.sample_grid=4"]


def _bigan(tmp_path, data, steps, name="bigan", extra=()):
    sets = _sets([f"data.name={data}", "data.split=train", *BIGAN_SMALL, *extra])
    return cf.train("bigan-mnist", out=tmp_path / name, steps=steps, overrides=sets, progress=False)


def _recipe(preset, data, extra=()):
    from counterfeit import config
    from counterfeit.data import load_data
    from counterfeit.recipes import build_recipe

    cfg = config.load_config(preset, [f"data.name={data}", "data.split=train", *extra])
    d = load_data(cfg.data.name, cfg.data.split)
    return build_recipe(cfg, d.shape, d), d


def test_the_joint_discriminator_sees_real_pairs_x_ex_and_generated_pairs_gz_z(mnist_dir):
    """A hand check on a batch of 4: D's first call is (x, E(x)) for the batch's x, its second (G(z), z) for the
    step's noise, and the two losses are the BCE of the module docstring computed by hand from D's logits."""
    import torch.nn.functional as F

    from counterfeit.data import to_float

    torch.manual_seed(0)
    recipe, d = _recipe("bigan-mnist", mnist_dir, BIGAN_SMALL)
    for m in recipe.nets.values():
        m.eval()  # BatchNorm on running statistics: E(x) and G(z) recomputed below are the same numbers
    seen = []
    D = recipe.nets["D"]
    real_forward = D.forward
    D.forward = lambda x, z: seen.append((x.detach().clone(), z.detach().clone())) or real_forward(x, z)
    x = to_float(d.x[:4], "01")
    out = recipe.losses("D+GE", {"x": x})
    (x1, z1), (x2, z2) = seen
    with torch.no_grad():
        assert torch.equal(x1, x) and torch.allclose(z1, recipe.nets["E"](x))
        assert torch.allclose(x2, recipe.nets["G"](z2)) and z2.abs().max() <= 1.0 and z2.shape == (4, 50)
        lr, lf = real_forward(x1, z1), real_forward(x2, z2)
    d_want = 0.5 * (F.softplus(-lr).mean() + F.softplus(lf).mean())
    g_want = 0.5 * (F.softplus(lr).mean() + F.softplus(-lf).mean())
    assert torch.allclose(out["D"].terms["adv"], d_want) and torch.allclose(out["GE"].terms["adv"], g_want)


def test_a_bigan_step_changes_every_network_and_resume_is_bit_exact(tmp_path, mnist_dir):
    two = _bigan(tmp_path, mnist_dir, 2, "two", ["train.checkpoint_every=1", "train.keep_checkpoints=0"])
    (_, a), (_, b) = list_checkpoints(two.path)[-2:]
    a, b = safe_load(a)["nets"], safe_load(b)["nets"]
    for net in ("G", "E", "D"):
        assert any(not torch.equal(a[net][k], b[net][k]) for k in a[net] if k.endswith("weight")), net
    whole = _bigan(tmp_path, mnist_dir, 20, "whole")
    half = _bigan(tmp_path, mnist_dir, 10, "half").train(steps=20)
    a, b = safe_load(latest_checkpoint(whole.path)), safe_load(latest_checkpoint(half.path))
    assert all(torch.equal(a["nets"][n][k], b["nets"][n][k]) for n in a["nets"] for k in a["nets"][n])
    r = whole.evaluate(["recon", "probe"], n=50)
    assert r["recon"]["n"] == 50 and r["probe"]["dim"] == 50
    assert whole.encode(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).abs().max() < 1.0  # E's range: (-1, 1)


def test_a_hook_reconstructs_with_the_moving_averages_of_e_and_g_as_the_finished_run_does(tmp_path, mnist_dir):
    """With train.ema_decay a BiGAN keeps moving averages of G and E; reconstruct() inside an every() hook pairs
    them as the loaded run does, not the live E with the averaged G."""
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    seen = {}
    hook = cf.every(10, lambda run: seen.update({run.step: (run.encode(x), run.reconstruct(x))}))
    sets = _sets([f"data.name={mnist_dir}", "data.split=train", *BIGAN_SMALL, "train.ema_decay=0.5"])
    run = cf.train("bigan-mnist", out=tmp_path / "ema", steps=10, overrides=sets, hooks=[hook], progress=False)
    live_e = run.recipe.nets["E"]  # the loaded run's E holds the average; the live one is in the checkpoint
    assert torch.equal(seen[10][0], run.encode(x)) and torch.equal(seen[10][1], run.reconstruct(x))
    live_e.load_state_dict(safe_load(latest_checkpoint(run.path))["nets"]["E"])
    with torch.no_grad():
        assert not torch.allclose(live_e(x.float() / 255), seen[10][0])


def test_bigan_refusals(tmp_path, mnist_dir, digits, capsys):
    for bad in ("train.n_dis=2", "model.num_classes=10", "model.discriminator=maxout"):
        assert main(["train", "bigan-mnist", "--data", str(mnist_dir), "--set", bad, "--out",
                     str(tmp_path / "b")]) == 2
        assert "bigan" in capsys.readouterr().err and not (tmp_path / "b").exists()
    # a folder of images has no test split: recon and probe refuse rather than score the training images
    from PIL import Image

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(16):
        Image.fromarray(digits.x[i, 0].numpy()).save(folder / f"{i}.png")
    run = _bigan(tmp_path, folder, 2, "folder")
    with pytest.raises(cf.UserError, match="has none"):
        run.evaluate(["recon"], n=8)


# ---------------------------------------------------------------------------------------------- semi-supervised

SS_SMALL = ["data.labelled_per_class=3", "train.batch_size=20", "train.sample_every=10", "train.checkpoint_every=10",
            "train.log_every=5", "train.sample_grid=4", "train.ema_decay=0.9"]


def _ssgan(tmp_path, data, steps, name="ss", preset="ssgan-mnist", extra=()):
    sets = _sets([f"data.name={data}", *SS_SMALL, *extra])
    return cf.train(preset, out=tmp_path / name, steps=steps, overrides=sets, progress=False)


def test_the_k_plus_1_losses_against_hand_values(mnist_dir):
    """K = 2 logits. Unlabelled logits (0, 0): Z = 2, D(x) = 2/3, -log D(x) = log 1.5; generated logits (0, 0):
    -log(1 - D(G(z))) = log 3; labelled logits (2, 0) of class 0: CE = log(1 + e^-2). Feature matching: the squared
    difference of the batch means, averaged over units."""
    import math

    recipe, d = _recipe("ssgan-mnist", mnist_dir, ["model.num_classes=10", "data.labelled_per_class=2"])
    D = recipe.nets["D"]
    calls = []

    def logits(x):
        calls.append(len(x))
        return torch.tensor([[2.0, 0.0]]).expand(len(x), 2) if len(calls) == 1 else torch.zeros(len(x), 2)

    D.forward = logits
    recipe.lab_y = torch.zeros_like(recipe.lab_y)  # every labelled image of class 0
    out = recipe.losses("D", {"x": torch.rand(6, 1, 28, 28)})["D"].terms
    assert math.isclose(out["sup"].item(), math.log(1 + math.exp(-2)), rel_tol=1e-6)
    assert math.isclose(out["unsup"].item(), 0.5 * (math.log(1.5) + math.log(3.0)), rel_tol=1e-6)
    D.features = lambda x: torch.full((len(x), 3), 1.0) if x.shape[1] == 1 and x.min() >= 0.5 else \
        torch.full((len(x), 3), 3.0)
    x = torch.ones(6, 1, 28, 28)  # real features 1 everywhere; G's samples (sigmoid < 1) give features 3
    recipe.nets["G"].forward = lambda z: torch.zeros(len(z), 1, 28, 28)
    fm = recipe.losses("G", {"x": x})["G"].terms["fm"]
    assert math.isclose(fm.item(), 4.0, rel_tol=1e-6)


def test_the_labelled_subset_is_balanced_fixed_by_its_seed_and_refused_when_short():
    from counterfeit.errors import UserError
    from counterfeit.recipes.ssgan import labelled_subset

    y = torch.arange(100) % 10
    a, b, c = labelled_subset(y, 3, 1), labelled_subset(y, 3, 1), labelled_subset(y, 3, 2)
    assert torch.equal(a, b) and not torch.equal(a, c) and len(a) == 30
    assert torch.equal(torch.bincount(y[a]), torch.full((10,), 3))
    with pytest.raises(UserError, match="class 0 has 10 images"):
        labelled_subset(y, 11, 1)


def test_ssgan_steps_change_both_networks_resume_is_bit_exact_and_ssl_scores_the_test_split(tmp_path, mnist_dir):
    two = _ssgan(tmp_path, mnist_dir, 2, "two", extra=["train.checkpoint_every=1", "train.keep_checkpoints=0"])
    (_, a), (_, b) = list_checkpoints(two.path)[-2:]
    a, b = safe_load(a), safe_load(b)
    for net in ("G", "D"):
        assert any(not torch.equal(a["nets"][net][k], b["nets"][net][k]) for k in a["nets"][net]), net
    assert len(a["recipe"]["labelled"]) == 30 and torch.equal(a["recipe"]["labelled"], b["recipe"]["labelled"])
    whole = _ssgan(tmp_path, mnist_dir, 20, "whole")
    half = _ssgan(tmp_path, mnist_dir, 10, "half").train(steps=20)
    a, b = safe_load(latest_checkpoint(whole.path)), safe_load(latest_checkpoint(half.path))
    assert all(torch.equal(a["nets"][n][k], b["nets"][n][k]) for n in a["nets"] for k in a["nets"][n])
    assert all(torch.equal(a["ema"]["D"][k], b["ema"]["D"][k]) for k in a["ema"]["D"])
    assert a["recipe"]["lab_pos"] == b["recipe"]["lab_pos"] and 0 < a["recipe"]["lab_pos"] < 30  # mid-reshuffle
    r = whole.evaluate(["ssl", "probe"], n=200)
    again = whole.evaluate(["ssl", "probe"], n=200)  # D's moving average, no noise: the same numbers twice
    assert r["ssl"]["n"] == 200 and r["ssl"]["labelled"] == 30 and (r["ssl"], r["probe"]) == (again["ssl"],
                                                                                                again["probe"])
    # the error is D's (moving average) argmax on the test digits, by hand
    from counterfeit.data import load_data, to_float

    test = load_data(str(mnist_dir), "test")
    D = whole.recipe.nets["D"]
    assert torch.equal(D.state_dict()["out.v"], a["ema"]["D"]["out.v"]) and not D.training
    with torch.no_grad():
        wrong = int((D(to_float(test.x[:200], "01")).argmax(1) != test.y[:200]).sum())
    assert r["ssl"]["wrong"] == wrong
    assert r["probe"]["dim"] == 250
    with pytest.raises(cf.UserError, match="at least 2 samples"):
        whole.samples(1)


def test_the_supervised_baseline_trains_d_alone(tmp_path, mnist_dir):
    run = _ssgan(tmp_path, mnist_dir, 10, "sup", preset="ssgan-mnist-supervised")
    assert run.config.loss.unsup_weight == 0
    rows = [r for r in _rows(run) if "loss/D/total" in r]
    assert rows and all("loss/D/unsup" not in r and "loss/G/total" not in r for r in rows)


def test_ssgan_adam_damps_steps_on_tiny_gradients_as_improved_gans_adam_does(mnist_dir):
    """improved-gan's Adam divides by sqrt(v + 1e-8), so a gradient of 1e-6 moves a weight by ~1% of the learning
    rate; torch's default (sqrt(v) + 1e-8) would move it by the full rate. ssgan-mnist's optim.eps 1e-4 reaches
    torch's Adam and gives the damped step."""
    from counterfeit.recipes.base import make_optimizer

    recipe, _ = _recipe("ssgan-mnist", mnist_dir)
    o = recipe.cfg.optim
    assert o.eps == 1e-4 and all(g.optimizer.param_groups[0]["eps"] == 1e-4 for g in recipe.optimizers().values())
    w = torch.nn.Parameter(torch.zeros(1))
    opt = make_optimizer(o, [w], 3e-3)
    w.grad = torch.full((1,), 1e-6)
    opt.step()
    theano = 3e-3 * 1e-6 / (1e-6 ** 2 + 1e-8) ** 0.5  # first step: v_hat = g^2, m_hat = g
    assert abs(w.detach().item() + theano) < 0.5 * theano  # within a factor of 2 of theirs, 100x under torch's default
