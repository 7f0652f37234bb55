import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from torch.testing import assert_close

from counterfeit import config
from counterfeit.checkpoint import list_checkpoints, safe_load
from counterfeit.cli.__main__ import main
from counterfeit.data.toy import GAUSS1D
from counterfeit.data.toy import toy_modes as mixture_modes
from counterfeit.metrics.modes import toy_modes
from counterfeit.recipes import build_recipe
from counterfeit.sampling import generate, load_generator
from counterfeit.loop import train
from counterfeit.viz.gradients import generator_gradients
from counterfeit.viz.interpolate import lerp, slerp
from counterfeit.viz.toy import latent_map
from conftest import tiny_overrides


def test_figure1_from_a_real_run_ends_with_d_near_one_half(tmp_path, capsys):
    run = tmp_path / "fig1"
    assert main(["figure1", "--out", str(run), "--no-progress"]) == 0
    for name in ("figure1.png", "progress.gif", "curves.png", "report.html"):
        assert (run / name).is_file(), name
    assert "largest |D(x) - 1/2|" in capsys.readouterr().out
    # check the claim on the final checkpoint itself: D(x) within 0.1 of 1/2 across mean +- 2 std
    state = safe_load(list_checkpoints(run)[-1][1])
    cfg = config.from_dict(json.loads(state["config"]))
    r = build_recipe(cfg, (1,))
    r.D.load_state_dict(state["nets"]["D"])
    r.D.eval()
    mean, std = GAUSS1D
    x = torch.linspace(mean - 2 * std, mean + 2 * std, 200).unsqueeze(1)
    with torch.no_grad():
        d = torch.sigmoid(r.D(x))
    assert (d - 0.5).abs().max() < 0.1, float((d - 0.5).abs().max())
    with Image.open(run / "figure1.png") as im:
        assert im.width > 3 * im.height  # four panels side by side


def test_2d_toy_frames_and_mode_counts(tmp_path):
    cfg = config.load_config("figure1", ["data.name=toy:ring8", "model.z_dim=2", "model.noise=normal",
                                         "model.pack=2", "train.steps=20", "train.sample_every=10",
                                         "train.checkpoint_every=10", "train.n_dis=1"])
    res = train(cfg, tmp_path / "ring", progress=False)
    frames = sorted((res.run_dir / "samples").glob("step-*.png"))
    assert [f.stem for f in frames] == ["step-00000000", "step-00000010", "step-00000020"]
    rows = [json.loads(r) for r in (res.run_dir / "metrics.jsonl").read_text().splitlines() if "toy/modes_captured" in r]
    assert len(rows) == 3 and all(0 <= r["toy/modes_captured"] <= 8 and 0 <= r["toy/high_quality"] <= 1 for r in rows)
    assert (res.run_dir / "progress.gif").is_file()


def test_generator_gradients_match_the_closed_form():
    g = generator_gradients(50)
    d = g["D(G(z))"]
    assert_close(g["minimax"], d)  # |d log(1 - sigmoid(l)) / dl| = D(G(z)): vanishes as D(G(z)) -> 0
    assert_close(g["nonsat"], 1 - d)  # |d -log sigmoid(l) / dl| = 1 - D(G(z)): near 1 there


def test_slerp_and_lerp_endpoints():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g)
    t = torch.linspace(0, 1, 5)
    for f in (slerp, lerp):
        z = f(a, b, t)
        assert z.shape == (3, 5, 16)
        assert_close(z[:, 0], a, atol=1e-5, rtol=1e-5)
        assert_close(z[:, -1], b, atol=1e-5, rtol=1e-5)
    # slerp between equal-norm vectors keeps the norm
    b2 = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    assert_close(slerp(a, b2, t).norm(dim=2), a.norm(dim=1, keepdim=True).expand(3, 5), atol=1e-4, rtol=1e-4)


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_headless_chromium(tmp_path, mnist_dir):
    run = tmp_path / "run"
    assert main(["train", "gan2014-mnist", "--no-progress", "--out", str(run),
                 *sum([["--set", s] for s in tiny_overrides(mnist_dir, 6)], [])]) == 0
    assert main(["report", str(run)]) == 0
    page = run / "report.html"
    text = page.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text  # opens offline, no server
    for name in ("curves.png", "progress.gif", "interpolation.png", "gradients.png"):
        assert name in text
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium'); the report was not rendered")
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
           "--window-size=1100,1600", page.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    with Image.open(shot) as im:
        assert im.size == (1100, 1600)
        a = np.asarray(im.convert("L"), dtype=np.float64)
    assert a.std() > 20  # not a blank page: text, plots and sample grids
    assert (a < 128).mean() > 0.02 and (a > 200).mean() > 0.3


def test_latent_map_shares_are_the_generators_sample_shares(ring_run, tmp_path):
    # the map's mass per mode (integrated over a z grid) is what G's samples show: 20,000 draws, std ~0.003 a mode
    recipe, _, _ = load_generator(ring_run)
    r = latent_map(recipe, tmp_path / "latent-map.png", "ring8")
    modes, std = mixture_modes("ring8")
    c = toy_modes(generate(recipe, 20000, seed=3, as_uint8=False).reshape(-1, 2), modes, std)
    assert_close(torch.tensor(r["per_mode"], dtype=torch.float64), torch.tensor(c["per_mode"], dtype=torch.float64) / 20000,
                 atol=0.012, rtol=0)
    assert abs(r["off_mode"] - (1 - c["high_quality"])) < 0.012
    assert abs(sum(r["per_mode"]) + r["off_mode"] - 1) < 1e-9
    with Image.open(tmp_path / "latent-map.png") as im:
        assert np.asarray(im.convert("L")).std() > 20  # a drawn figure, not a blank canvas
    # `counterfeit report` draws it for a 2-D toy run and puts it in the page
    run = tmp_path / "run"
    shutil.copytree(ring_run, run)
    assert main(["report", str(run)]) == 0
    assert (run / "latent-map.png").is_file() and "latent-map.png" in (run / "report.html").read_text()
