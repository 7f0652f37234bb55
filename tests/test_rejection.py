"""Discriminator rejection sampling: exact for a known density ratio, sharper samples on a real toy run, refusals."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from counterfeit import config
from counterfeit.cli.__main__ import main
from counterfeit.data.toy import toy_modes as mixture_modes
from counterfeit.errors import UserError
from counterfeit.metrics.modes import toy_modes
from counterfeit.recipes import build_recipe
from counterfeit.rejection import RejectionSampler, generate_rejected
from counterfeit.sampling import generate, load_generator
from counterfeit.loop import train


class _Logit(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x.flatten(1)[:, 0])


def _toy_recipe(extra=()):
    cfg = config.load_config("toy2d-gan", ["data.name=toy:gauss1d", "model.z_dim=1", *extra])
    return build_recipe(cfg, (1,), None)


def test_exact_rejection_recovers_the_data_distribution():
    # G(z) = z ~ N(0, 1); D's logit is the true log density ratio to N(0.5, 1): 0.5 x - 0.125
    recipe = _toy_recipe()
    recipe.G = _Logit(lambda x: x.unsqueeze(1))
    recipe.D = _Logit(lambda x: 0.5 * x - 0.125)
    s = RejectionSampler(recipe, fit_steps=0, quantile=None, seed=0)
    x, _ = s.sample(20000)
    assert abs(float(x.mean()) - 0.5) < 0.03 and abs(float(x.std()) - 1.0) < 0.03
    # E_g[exp(logit - D_M)] = E_g[p_data / p_g] / exp(D_M) = exp(-D_M): rejection sampling's 1 / M
    assert abs(s.acceptance - torch.exp(torch.tensor(-s.d_max)).item()) < 0.03


def test_rejection_sharpens_a_trained_toy_generator_and_leaves_the_run_alone(ring_run):
    recipe, _, _ = load_generator(ring_run)
    d_before = {k: v.clone() for k, v in recipe.D.state_dict().items()}
    modes, std = mixture_modes("ring8")
    raw = toy_modes(generate(recipe, 2000, seed=1, as_uint8=False).reshape(-1, 2), modes, std)
    x, info = generate_rejected(recipe, 2000, seed=1, fit_steps=200, as_uint8=False)
    drs = toy_modes(x.reshape(-1, 2), modes, std)
    assert x.shape == (2000, 2) and 0 < info["acceptance"] < 1
    assert drs["high_quality"] > raw["high_quality"] + 0.05, (raw, drs)  # 2,000-step probe: 0.63 -> 0.78
    assert drs["modes_captured"] >= raw["modes_captured"]
    assert all(torch.equal(v, recipe.D.state_dict()[k]) for k, v in d_before.items())  # D was refit on a copy


def test_cli_evaluate_modes_on_a_toy_run(ring_run, tmp_path, capsys):
    # the default metric of a 2D toy run is the mode count; the CLI agrees with the library on the same samples
    out = tmp_path / "modes.json"
    assert main(["evaluate", str(ring_run), "--n", "2000", "--seed", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    r = json.loads(out.read_text())["modes"]
    recipe, _, _ = load_generator(ring_run)
    modes, std = mixture_modes("ring8")
    lib = toy_modes(generate(recipe, 2000, seed=1, as_uint8=False).reshape(-1, 2), modes, std)
    assert r["modes_captured"] == lib["modes_captured"] and r["per_mode"] == lib["per_mode"]
    assert f"modes:     {r['modes_captured']}/8 captured" in printed
    assert " ".join(f"{c:6d}" for c in r["per_mode"]) in printed
    # a checkpoint file (not its run dir) gets the same default, read from the config inside the checkpoint
    (ckpt_file,) = sorted((ring_run / "checkpoints").iterdir())
    assert main(["evaluate", str(ckpt_file), "--n", "2000", "--seed", "1"]) == 0
    assert f"modes:     {r['modes_captured']}/8 captured" in capsys.readouterr().out
    # through DRS: as the library's sampler, with the same seed, fit steps and quantile
    assert main(["evaluate", str(ring_run), "--metrics", "modes", "--n", "1000", "--seed", "1", "--drs",
                 "--drs-fit-steps", "50", "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    x, _ = generate_rejected(load_generator(ring_run)[0], 1000, seed=1, fit_steps=50, as_uint8=False)
    assert d["modes"]["per_mode"] == toy_modes(x.reshape(-1, 2), modes, std)["per_mode"]
    assert d["provenance"]["sampler"] == "discriminator rejection sampling"


@pytest.mark.parametrize("argv, why", [(["--metrics", "modes,fid"], "goes alone"),
                                       (["--metrics", "modes", "--data", "toy:gauss1d"], "2D mixture"),
                                       (["--metrics", "fid"], "score it with --metrics modes")])
def test_cli_evaluate_modes_refusals(ring_run, capsys, argv, why):
    assert main(["evaluate", str(ring_run), *argv]) == 2
    assert why in capsys.readouterr().err


@pytest.mark.parametrize("extra, why", [(["model.recipe=hinge"], "density ratio"), (["model.pack=2"], "pack")])
def test_critics_and_packed_discriminators_are_refused(extra, why):
    with pytest.raises(UserError, match=why):
        RejectionSampler(_toy_recipe(extra), fit_steps=0)


def test_bad_counts_are_refused_before_any_refit():
    with pytest.raises(UserError, match="fit steps"):
        RejectionSampler(_toy_recipe(), fit_steps=-1)
    with pytest.raises(UserError, match="positive"):  # a refit of 10^9 steps would hang if it ran first
        generate_rejected(_toy_recipe(), 0, fit_steps=10**9)


@pytest.mark.parametrize("preset", ["dcgan-mnist", "cgan-mnist"])
def test_cli_sample_and_evaluate_with_rejection(tmp_path, mnist_dir, capsys, preset):
    cfg = config.load_config(preset, [f"data.name={mnist_dir}", "model.width_g=8", "model.width_d=8",
                                             "train.batch_size=16", "train.steps=3", "train.epochs=0",
                                             "train.parzen_monitor=false", "train.sample_grid=2"])
    train(cfg, tmp_path / "run", progress=False)
    out = tmp_path / "s.npz"
    assert main(["sample", str(tmp_path / "run"), "--n", "40", "--out", str(out), "--drs", "--drs-fit-steps", "2"]) == 0
    assert np.load(out)["images"].shape == (40, 28, 28, 1)
    assert "rejection sampling kept" in capsys.readouterr().out
    assert main(["evaluate", str(out), "--drs"]) == 2
