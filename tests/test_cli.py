"""The CLI contract: names from DESIGN.md, one-line errors with exit code 2, nothing existing harmed."""

import json

import numpy as np
import pytest

from counterfeit.cli.__main__ import main
from conftest import tiny_overrides


def _sets(data, steps=4):
    return sum([["--set", s] for s in tiny_overrides(data, steps)], [])


@pytest.fixture
def trained(tmp_path, mnist_dir):
    run = tmp_path / "run"
    assert main(["train", "gan2014-mnist", "--no-progress", "--out", str(run), *_sets(mnist_dir)]) == 0
    return run


def _one_line_error(capsys, code, *fragments):
    out = capsys.readouterr()
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("counterfeit: error: "), out.err
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in out.err


def test_presets_and_dry_run(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "gan2014-mnist" in out and "quickstart" in out
    assert main(["train", "gan2014-mnist", "--dry-run", "--set", "optim.lr_d=0.02", "--steps", "9"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["optim"]["lr_d"] == 0.02 and cfg["train"]["steps"] == 9 and cfg["model"]["d_pieces"] == 5


@pytest.mark.parametrize("argv,fragments", [
    (["train", "nosuch"], ["unknown preset 'nosuch'"]),
    (["train", "gan2014-mnist", "--set", "train.bogus=1"], ["unknown config key 'train.bogus'"]),
    (["train", "gan2014-mnist", "--set", "train.batch_size=big"], ["expected an integer"]),
    (["train", "gan2014-mnist", "--steps", "x"], ["invalid int value"]),
    (["evaluate", "x.npz", "--metrics", "vibes"], ["unknown metric(s) vibes"]),
    (["sample", "no/such/run", "--out", "s.npz"], ["no such run dir or checkpoint"]),
    (["frobnicate"], ["invalid choice"]),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, fragments):
    _one_line_error(capsys, main(argv), *fragments)


def test_corrupt_data_file(tmp_path, mnist_dir, capsys):
    f = mnist_dir / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:500])
    code = main(["train", "gan2014-mnist", "--out", str(tmp_path / "r"), *_sets(mnist_dir)])
    _one_line_error(capsys, code, "corrupt data file", "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "r").exists()


def test_missing_dataset_offline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COUNTERFEIT_DATA", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("counterfeit.data.fetch.SYSTEM_DIRS", {})
    code = main(["train", "gan2014-mnist", "--data", "fashion-mnist", "--out", str(tmp_path / "r")])
    _one_line_error(capsys, code, "dataset 'fashion-mnist' not found locally", "put train-images-idx3-ubyte")


def test_existing_run_is_not_overwritten(trained, mnist_dir, capsys):
    before = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    code = main(["train", "gan2014-mnist", "--out", str(trained), *_sets(mnist_dir)])
    _one_line_error(capsys, code, "already holds a run", "--resume")
    assert {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()} == before


def test_truncated_checkpoint(trained, tmp_path, capsys):
    ck = sorted((trained / "checkpoints").iterdir())[-1]
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    _one_line_error(capsys, main(["sample", str(bad), "--n", "4", "--out", str(tmp_path / "s.npz")]),
                    "cannot read checkpoint", "bad.pt")
    ck.write_bytes(ck.read_bytes()[:1000])  # the run's own latest checkpoint, damaged
    code = main(["train", str(trained), "--resume", "--steps", "8", "--no-progress"])
    _one_line_error(capsys, code, "cannot read checkpoint")


def test_checkpoint_that_would_run_code_is_refused(tmp_path, capsys):
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pt"
    torch.save({"format": 1, "G": Evil()}, p)  # unpickling it would call print("pwned")
    _one_line_error(capsys, main(["sample", str(p), "--n", "2", "--out", str(tmp_path / "s.npz")]), "cannot read checkpoint")
    assert "pwned" not in capsys.readouterr().out


def test_sample_npz_and_png_folder(trained, tmp_path, capsys):
    out = tmp_path / "s.npz"
    assert main(["sample", str(trained), "--n", "10", "--out", str(out), "--seed", "3"]) == 0
    with np.load(out) as z:
        assert list(z) == ["images"] and z["images"].shape == (10, 28, 28, 1) and z["images"].dtype == np.uint8
        first = z["images"].copy()
    _one_line_error(capsys, main(["sample", str(trained), "--n", "10", "--out", str(out)]), "refusing to overwrite")
    assert main(["sample", str(trained), "--n", "3", "--out", str(tmp_path / "pngs"), "--seed", "3"]) == 0
    from PIL import Image

    pngs = sorted((tmp_path / "pngs").iterdir())
    assert len(pngs) == 3
    np.testing.assert_array_equal(np.asarray(Image.open(pngs[0]))[..., None], first[0])  # same seed, same sample
    _one_line_error(capsys, main(["sample", str(trained), "--n", "2", "--label", "7", "--out", str(tmp_path / "l.npz")]),
                    "needs a conditional recipe")


def test_evaluate_prints_the_memorisation_check_beside_parzen(trained, mnist_dir, tmp_path, capsys):
    """--metrics parzen,nearest: the run's own training images (its data.split) are the reference, the test split
    the yardstick; the result line and JSON say how many of each."""
    res = tmp_path / "res.json"
    assert main(["evaluate", str(trained), "--metrics", "parzen,nearest", "--n", "300", "--json", str(res)]) == 0
    out = capsys.readouterr().out
    assert "parzen:" in out and "nearest:   copies" in out
    m = json.loads(res.read_text())["nearest"]
    assert (m["n_samples"], m["n_train"], m["n_test"]) == (300, 400, 200) and 0 <= m["copies"] <= 1 and m["ratio"] > 0
    assert m["train"].endswith(" train") and m["test"].endswith(" test")


def test_evaluate_parzen_on_run_and_npz(trained, mnist_dir, tmp_path, capsys):
    res = tmp_path / "res.json"
    assert main(["evaluate", str(trained), "--metrics", "parzen", "--data", str(mnist_dir), "--n", "300",
                 "--json", str(res)]) == 0
    r = json.loads(res.read_text())
    assert r["parzen"]["n_samples"] == 300 and r["parzen"]["n_test"] == 200 and np.isfinite(r["parzen"]["mean"])
    assert r["provenance"]["step"] == 4
    npz = tmp_path / "s.npz"
    main(["sample", str(trained), "--n", "50", "--out", str(npz)])
    assert main(["evaluate", str(npz), "--metrics", "parzen", "--data", str(mnist_dir)]) == 0
    assert "parzen:" in capsys.readouterr().out
