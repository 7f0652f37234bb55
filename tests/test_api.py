"""The Python API as a notebook uses it: train, load, sample, look, score, continue; a user's hook and networks."""

import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import counterfeit as cf
from counterfeit.checkpoint import latest_checkpoint, safe_load
from counterfeit.cli.__main__ import main
from counterfeit.config import parse_override
from conftest import tiny_overrides


def _sets(data, steps=6, extra=()):
    """The tiny 2014 GAN of the other tests, as the mapping a Python caller passes."""
    d = {".".join(k): v for k, v in map(parse_override, tiny_overrides(data, steps) + list(extra))}
    d.pop("train.steps"), d.pop("train.epochs")
    return d


def test_presets_name_each_with_a_line():
    p = cf.presets()
    assert "quickstart" in p and "dcgan-mnist" in p and all(isinstance(v, str) for v in p.values())
    assert p["quickstart"]


def test_train_returns_a_run_that_samples_what_the_cli_samples(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sets = _sets(mnist_dir, extra=["train.ema_decay=0.9"])
    run = cf.train("gan2014-mnist", steps=6, overrides=sets, progress=False)
    assert run.path == tmp_path.joinpath("runs", "gan2014-mnist").relative_to(tmp_path) and run.step == 6
    again = cf.train("gan2014-mnist", steps=2, overrides=sets, progress=False)  # the cell run again
    assert str(again.path) == "runs/gan2014-mnist-2"
    # the generator handed out is the one `sample` uses: the EMA weights, in eval mode
    state = safe_load(latest_checkpoint(run.path))
    G = run.generator
    assert not G.training and all(torch.equal(v, state["ema"]["G"][k]) for k, v in G.state_dict().items())
    assert not all(torch.equal(v, state["nets"]["G"][k]) for k, v in G.state_dict().items())
    x = run.samples(8, seed=3)
    assert x.dtype == torch.uint8 and x.shape == (8, 1, 28, 28)
    assert main(["sample", str(run.path), "--n", "8", "--seed", "3", "--out", "s.npz"]) == 0
    with np.load("s.npz") as z:
        assert np.array_equal(z["images"], x.permute(0, 2, 3, 1).numpy())
    img = run.grid(16)
    assert isinstance(img, Image.Image) and img.size[0] > 4 * 28
    assert run.interpolate(5).shape == (5, 1, 28, 28)
    html = run._repr_html_()
    assert "data:image/png;base64," in html and "step" in html
    rows = run.metrics
    rows = rows.to_dict("records") if hasattr(rows, "to_dict") else rows
    assert any("loss/D/total" in r for r in rows)


def test_continuing_a_run_from_python_is_bit_exact(tmp_path, mnist_dir):
    sets = _sets(mnist_dir)
    straight = cf.train("gan2014-mnist", out=tmp_path / "a", steps=6, overrides=sets, progress=False)
    half = cf.train("gan2014-mnist", out=tmp_path / "b", steps=3, overrides=sets, progress=False)
    resumed = half.train(steps=6, progress=False)
    assert resumed.step == 6
    a, b = safe_load(latest_checkpoint(straight.path)), safe_load(latest_checkpoint(resumed.path))
    for net in ("G", "D"):
        assert all(torch.equal(v, b["nets"][net][k]) for k, v in a["nets"][net].items())


def test_a_user_hook_sees_the_training_in_progress_at_its_interval(tmp_path, mnist_dir):
    seen = []

    def look(run):
        seen.append((run.step, run.grid(4).size, run.generator.training))
        return {"user/pixel_mean": float(run.samples(4).float().mean())}

    run = cf.train("gan2014-mnist", out=tmp_path / "r", steps=6, overrides=_sets(mnist_dir), progress=False,
                   hooks=[cf.every(2, look)])
    assert [s for s, _, _ in seen] == [2, 4, 6] and not any(t for _, _, t in seen)  # eval mode while it draws
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "user/pixel_mean" in r] == [2, 4, 6]
    assert all(m.training for m in run.recipe.nets.values()) is False  # the loaded run: eval mode


def test_a_hook_that_draws_random_numbers_leaves_the_run_as_it_would_have_been(tmp_path, mnist_dir):
    def meddle(run):
        torch.rand(1000)  # the global stream, which dropout and the batches also draw from
        run.generator(torch.randn(3, 8))

    plain = cf.train("gan2014-mnist", out=tmp_path / "a", steps=6, overrides=_sets(mnist_dir), progress=False)
    hooked = cf.train("gan2014-mnist", out=tmp_path / "b", steps=6, overrides=_sets(mnist_dir), progress=False,
                      hooks=[cf.every(2, meddle)])
    a, b = safe_load(latest_checkpoint(plain.path)), safe_load(latest_checkpoint(hooked.path))
    for net in ("G", "D"):
        assert all(torch.equal(v, b["nets"][net][k]) for k, v in a["nets"][net].items())
    assert torch.equal(a["rng_cpu"], b["rng_cpu"])


USER_NETS = '''
import torch
from torch import nn


class TinyG(nn.Module):
    def __init__(self, z_dim=8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, 64), nn.ReLU(), nn.Linear(64, 784), nn.Sigmoid())

    def forward(self, z):
        return self.net(z).view(-1, 1, 28, 28)


class TinyD(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


class NeedsArgs(TinyG):
    def __init__(self, z_dim):
        super().__init__(z_dim)
'''


def test_your_own_networks_train_checkpoint_and_reload(tmp_path, mnist_dir, monkeypatch, capsys):
    (tmp_path / "usernets.py").write_text(textwrap.dedent(USER_NETS))
    monkeypatch.syspath_prepend(str(tmp_path))
    import usernets

    G, D = usernets.TinyG(), usernets.TinyD()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    run = cf.train("gan2014-mnist", out=tmp_path / "own", steps=4, overrides=_sets(mnist_dir), progress=False,
                   nets={"G": G, "D": D})
    assert run.config.model.generator == "py:usernets:TinyG"
    assert not all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # G itself trained
    state = safe_load(latest_checkpoint(run.path))
    assert set(state["nets"]["G"]) == set(before)
    reloaded = cf.load(run.path)  # rebuilt from its class
    assert type(reloaded.generator).__name__ == "TinyG" and reloaded.samples(2).shape == (2, 1, 28, 28)
    assert main(["sample", str(run.path), "--n", "2", "--out", str(tmp_path / "s.npz")]) == 0

    odd = cf.train("gan2014-mnist", out=tmp_path / "odd", steps=2, overrides=_sets(mnist_dir), progress=False,
                   nets={"G": usernets.NeedsArgs(8)})
    with pytest.raises(cf.UserError, match="cannot be built without arguments"):
        cf.load(odd.path)
    capsys.readouterr()
    assert main(["sample", str(odd.path), "--n", "2", "--out", str(tmp_path / "t.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NeedsArgs" in err[0]
    assert cf.load(odd.path, nets={"G": usernets.NeedsArgs(8)}).samples(2).shape == (2, 1, 28, 28)


def test_networks_that_break_the_contract_are_refused_before_anything_is_written(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "usernets2.py").write_text(textwrap.dedent(USER_NETS))
    import usernets2

    class WideD(usernets2.TinyD):
        def forward(self, x):
            return self.net(x)  # (B, 1): would broadcast against the labels

    with pytest.raises(cf.UserError, match=r"D gives \(2, 1\) for 2 images; it must give \(B,\) logits"):
        cf.train("gan2014-mnist", out=tmp_path / "w", steps=2, overrides=_sets(mnist_dir), progress=False,
                 nets={"G": usernets2.TinyG(), "D": WideD()})
    with pytest.raises(cf.UserError, match=r"G makes \(1, 14, 14\)"):
        cf.train("gan2014-mnist", out=tmp_path / "w", steps=2, overrides=_sets(mnist_dir), progress=False,
                 nets={"G": torch.nn.Sequential(torch.nn.Linear(8, 196), torch.nn.Unflatten(1, (1, 14, 14)))})
    with pytest.raises(cf.UserError, match="nets= replaces G and D of a noise-to-image recipe"):
        cf.train("pix2pix-edges2fashion", out=tmp_path / "w", steps=2, progress=False, nets={"G": usernets2.TinyG()})
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("kwargs,message", [
    ({"steps": 0}, "nothing to do: steps=0"),
    ({"steps": 5, "overrides": {"train.steps": 9}}, "steps=5 conflicts with overrides train.steps=9"),
    ({"overrides": {"optim.lr_d": "fast"}}, "optim.lr_d: expected a number, got 'fast'"),
    ({"overrides": {"train.bogus": 1}}, "unknown config key 'train.bogus'"),
    ({"hooks": [print]}, "hooks= takes Hook objects"),
])
def test_bad_arguments_are_the_clis_one_line_errors_in_pythons_words(tmp_path, kwargs, message):
    with pytest.raises(cf.UserError) as e:
        cf.train("quickstart", out=tmp_path / "r", progress=False, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value) and "--" not in str(e.value)
    assert not (tmp_path / "r").exists()


def test_an_occupied_run_dir_is_refused_in_pythons_words(tmp_path, mnist_dir):
    cf.train("gan2014-mnist", out=tmp_path / "r", steps=2, overrides=_sets(mnist_dir), progress=False)
    with pytest.raises(cf.UserError, match=r"already holds a run; pass resume=True to continue it or choose another "
                                           r"out="):
        cf.train("gan2014-mnist", out=tmp_path / "r", steps=2, overrides=_sets(mnist_dir), progress=False)
    with pytest.raises(cf.UserError, match="unknown preset 'nope'"):
        cf.train("nope")
    with pytest.raises(cf.UserError, match="no run or checkpoint"):
        cf.load(tmp_path / "missing")


def test_load_config_takes_a_mapping_of_typed_overrides():
    cfg = cf.load_config("dcgan-mnist", {"optim.lr_d": 1e-3, "train.steps": 7})
    assert cfg.optim.lr_d == 1e-3 and cfg.train.steps == 7
    assert cf.load_config("dcgan-mnist", ["optim.lr_d=1e-3"]).optim.lr_d == 1e-3


def test_translate_takes_and_returns_tensors_or_pil_images(tmp_path, aligned_dir):
    run = cf.train("pix2pix-edges2fashion", out=tmp_path / "p2p", steps=2, progress=False,
                   overrides={"data.name": str(aligned_dir), "model.width_g": 4, "model.width_d": 4,
                              "model.patch_layers": 1, "train.batch_size": 4, "train.sample_every": 1000,
                              "train.checkpoint_every": 1000, "train.sample_grid": 2, "optim.linear_decay_start": 0})
    x = torch.from_numpy(np.array(Image.open(next((aligned_dir / "test").iterdir())).convert("L")))[:, :32]
    one = x[None]  # (1, 32, 32): the input half of an AB image
    y = run.translate(one)
    assert y.dtype == torch.uint8 and y.shape == (1, 32, 32)
    assert torch.equal(run.translate(one[None])[0], y)  # a batch gives the same image
    pil = run.translate(Image.fromarray(x.numpy()))
    assert isinstance(pil, Image.Image) and np.array_equal(np.asarray(pil), y[0].numpy())
    with pytest.raises(cf.UserError, match="draws from noise|translates images"):
        run.samples(2)
    with pytest.raises(cf.UserError, match="uint8 tensor"):
        run.translate(x.float())


def test_the_package_exports_its_python_api():
    assert {"train", "load", "Run", "presets", "every", "evaluate", "Config", "load_config"} <= set(cf.__all__)
    for name in ("train", "load", "evaluate", "load_config", "every", "presets"):
        assert getattr(cf, name).__doc__, name
    assert sys.modules["counterfeit.api"].Run.__doc__


def test_a_recipe_subclass_defined_beside_the_call_trains_with_the_loop(tmp_path, mnist_dir):
    """A user's Recipe subclass (here the 2014 GAN with a doubled G loss), registered under a name of its own and
    named in the config: the loop, checkpoints and load work on it unchanged."""
    from counterfeit import registry
    from counterfeit.recipes.gan import GAN

    if "doubled-g-gan" not in registry.names("recipe"):
        @registry.register("recipe", "doubled-g-gan")
        class DoubledG(GAN):
            def g_adv(self, fake_out):
                return 2.0 * super().g_adv(fake_out)

    run = cf.train("gan2014-mnist", out=tmp_path / "mine", steps=4, progress=False,
                   overrides={**_sets(mnist_dir), "model.recipe": "doubled-g-gan"})
    assert type(run.recipe).__name__ == "DoubledG" and run.step == 4
    rows = [json.loads(line) for line in (run.path / "metrics.jsonl").read_text().splitlines()]
    assert any("loss/G/adv" in r for r in rows)
