"""Export round trips: the TorchScript and ONNX files run in a fresh Python process that never imports counterfeit
and give the run's own outputs on fixed inputs; a safetensors folder is read back by counterfeit.load."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import counterfeit as cf
from counterfeit.cli.__main__ import main
from counterfeit.export import example_inputs, generators

TINY = {"train.batch_size": 20, "train.sample_every": 1000, "train.checkpoint_every": 1000, "train.sample_grid": 2,
        "train.parzen_monitor": False}

# runs in a process of its own: only torch, numpy and onnxruntime, never counterfeit
CALLER = r"""
import json, sys
import numpy as np
folder, fmt, inputs, out = sys.argv[1:5]
spec = json.load(open(folder + "/generator.json"))
feeds = dict(np.load(inputs))
results = {}
for name, net in spec["networks"].items():
    args = [feeds[f"{name}.{k}"] for k in net["args"]]
    if fmt == "torchscript":
        import torch
        m = torch.jit.load(folder + "/" + net["file"])
        results[name] = m(*[torch.from_numpy(a) for a in args]).numpy()
    else:
        import onnxruntime as ort
        s = ort.InferenceSession(folder + "/" + net["file"], providers=["CPUExecutionProvider"])
        results[name] = s.run(None, dict(zip(net["args"], args)))[0]
np.savez(out, **results)
assert not any(m.startswith("counterfeit") for m in sys.modules), "imported counterfeit"
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits):
    from conftest import write_mnist_like

    root = tmp_path_factory.mktemp("export")
    mnist = write_mnist_like(root / "mnist", digits, 200, 100)
    noise = cf.train("gan2014-mnist", out=root / "gan", steps=2, progress=False,
                     overrides={**TINY, "data.name": str(mnist), "data.split": "train", "model.g_hidden": [32],
                                "model.d_units": 8, "model.z_dim": 8, "train.ema_decay": 0.9})
    cond = cf.train("cgan-mnist", out=root / "cgan", steps=2, progress=False,
                    overrides={**TINY, "data.name": str(mnist), "data.split": "train", "model.width_g": 8,
                               "model.width_d": 8})
    pairs = root / "pairs" / "train"
    pairs.mkdir(parents=True)
    from PIL import Image

    x = np.pad(digits.x[:8, 0].numpy(), ((0, 0), (2, 2), (2, 2)))
    for i, a in enumerate(x):
        Image.fromarray(np.concatenate([a, 255 - a], 1)).save(pairs / f"{i}.png")
    unet = cf.train("pix2pix-edges2fashion", out=root / "p2p", steps=2, progress=False,
                    overrides={**TINY, "data.name": str(root / "pairs"), "model.width_g": 4, "model.width_d": 4,
                               "model.patch_layers": 1, "train.batch_size": 4, "optim.linear_decay_start": 0})
    return {"noise": noise, "conditional": cond, "unet": unet}


def _reference(run, batch=3):
    """Fixed inputs at another batch size than the export traced, and the run's own outputs on them."""
    feeds, want = {}, {}
    for name, net in generators(run.recipe).items():
        args = example_inputs(run.recipe, name, batch)
        for k, a in zip(["z", "y"] if hasattr(run.recipe, "sample_z") else ["x"], args):
            feeds[f"{name}.{k}"] = a.numpy()
        with torch.no_grad():
            want[name] = net(*args).numpy()
    return feeds, want


@pytest.mark.parametrize("fmt,tol", [("torchscript", 1e-5), ("onnx", 1e-4)])
@pytest.mark.parametrize("kind", ["noise", "conditional", "unet"])
def test_an_exported_generator_gives_the_runs_outputs_without_counterfeit(runs, kind, fmt, tol, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="ONNX runs through onnxruntime (pip install -e '.[export]')")
    run = runs[kind]
    out = run.export(tmp_path / "exp", fmt)
    spec = json.loads((out / "generator.json").read_text())
    assert spec["step"] == 2 and spec["format"] == fmt and spec["ema"] == (kind == "noise")
    feeds, want = _reference(run)
    np.savez(tmp_path / "in.npz", **feeds)
    subprocess.run([sys.executable, "-c", CALLER, str(out), fmt, str(tmp_path / "in.npz"), str(tmp_path / "o.npz")],
                   check=True, cwd=tmp_path)
    with np.load(tmp_path / "o.npz") as got:
        assert sorted(got.files) == sorted(want)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=tol, atol=tol)


def test_the_json_says_how_to_call_each_generator(runs, tmp_path):
    noise = json.loads((runs["noise"].export(tmp_path / "n", "safetensors") / "generator.json").read_text())["networks"]
    z = noise["G"]["inputs"]["z"]
    assert z["shape"] == ["B", 8] and "uniform" in z["distribution"] and noise["G"]["output"]["range"] == [0, 1]
    cond = json.loads((runs["conditional"].export(tmp_path / "c", "safetensors") / "generator.json").read_text())
    assert cond["networks"]["G"]["inputs"]["y"] == {"shape": ["B"], "dtype": "int64", "classes": 10}
    unet = json.loads((runs["unet"].export(tmp_path / "u", "safetensors") / "generator.json").read_text())
    assert unet["networks"]["G"]["inputs"]["x"]["range"] == [-1, 1] and len(unet["networks"]["G"]["sha256"]) == 64


def test_a_safetensors_folder_is_read_back_by_load(runs, tmp_path):
    run = runs["conditional"]
    out = run.export(tmp_path / "st", "safetensors")
    back = cf.load(out)
    assert torch.equal(back.samples(6, label=3, seed=1), run.samples(6, label=3, seed=1))
    assert back.step == run.step
    (out / "G.safetensors").write_bytes((out / "G.safetensors").read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(cf.UserError, match="sha256 differs"):
        cf.load(out).samples(1)


def test_export_refuses_a_used_folder_and_an_unknown_format_leaving_it_as_it_was(runs, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["export", str(runs["noise"].path), "--out", str(taken)]) == 2
    assert [p.name for p in taken.iterdir()] == ["keep.txt"] and (taken / "keep.txt").read_text() == "mine"
    with pytest.raises(cf.UserError, match="--format must be one of"):
        runs["noise"].export(tmp_path / "x", "pickle")
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.*"))
    assert main(["export", str(runs["noise"].path), "--format", "torchscript", "--out", str(tmp_path / "ts")]) == 0
    assert "torchscript export of" in capsys.readouterr().out
