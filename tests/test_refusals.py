"""Nothing lost, nothing silently wrong: every refusal after a run dir is found leaves it byte for byte as it was;
outputs are written whole or not at all; inputs a user will meet end in one line and exit 2, not a traceback."""

import json
import struct
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from counterfeit.checkpoint import latest_checkpoint
from counterfeit.cli.__main__ import main
from conftest import tiny_overrides, without_steps


def snapshot(folder):
    """Every file under folder: relative path -> bytes (a refusal must leave this equal)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _train(mnist_dir, run, steps, *extra):
    sets = [a for s in without_steps(tiny_overrides(mnist_dir)) + list(extra) for a in ("--set", s)]
    return main(["train", "gan2014-mnist", "--out", str(run), "--steps", str(steps), "--no-progress", *sets])


def _one_line(capsys, want: str):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and want in err[0] and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def trained(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    assert _train(mnist_dir, run, 6) == 0
    capsys.readouterr()
    return run


# ---------------------------------------------------------------------------------------------- a run dir's refusals


@pytest.mark.parametrize("extra,want", [
    (["model.d_units=24", "--allow-config-change"], "does not fit this config"),  # weights of another shape
    (["model.recipe=lsgan", "model.g_hidden=[16]", "--allow-config-change"], "does not fit this config"),
    (["model.d_units=24"], "config differs from the run's"),
])
def test_a_refused_resume_leaves_the_run_dir_byte_for_byte(trained, mnist_dir, capsys, extra, want):
    before = snapshot(trained)
    sets = [a for s in without_steps(tiny_overrides(mnist_dir)) + [e for e in extra if "=" in e] for a in ("--set", s)]
    flags = [e for e in extra if e.startswith("--")]
    code = main(["train", "gan2014-mnist", "--out", str(trained), "--steps", "12", "--resume", "--no-progress",
                 *sets, *flags])
    assert code == 2
    _one_line(capsys, want)
    assert snapshot(trained) == before


def test_resuming_to_fewer_steps_than_the_run_has_is_refused_and_changes_nothing(trained, mnist_dir, capsys):
    before = snapshot(trained)
    sets = [a for s in without_steps(tiny_overrides(mnist_dir)) for a in ("--set", s)]
    code = main(["train", "gan2014-mnist", "--out", str(trained), "--steps", "3", "--resume", "--no-progress", *sets])
    assert code == 2
    _one_line(capsys, "the run is at step 6, past the 3 steps asked for")
    assert snapshot(trained) == before
    assert json.loads((trained / "config.json").read_text())["train"]["steps"] == 6


BAD_RESUMES = [
    ["--set", "model.d_units=24"],
    ["--set", "model.d_units=24", "--allow-config-change"],
    ["--set", "model.z_dim=9", "--allow-config-change"],
    ["--set", "optim.lr_d=nan"],
    ["--set", "train.batch_size=0"],
    ["--set", "train.eval_every=3", "--set", "train.eval_metrics=[fid, bogus]"],
    ["--set", "data.image_size=64"],
    ["--set", "data.name=/no/such/folder"],
    ["--steps", "2"],
    ["--seed", "-3"],
    ["--set", "train.select=parzen", "--set", "train.parzen_monitor=false"],
]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.sampled_from(BAD_RESUMES), steps=st.sampled_from(["9", "12"]))
def test_no_refusal_of_a_resume_changes_anything_in_the_run_dir(trained, mnist_dir, capsys, bad, steps):
    """Whatever the refusal and wherever it is found (config, data, checkpoint, length), the run dir is as it was."""
    before = snapshot(trained)
    sets = [a for s in without_steps(tiny_overrides(mnist_dir)) for a in ("--set", s)]
    args = ["train", "gan2014-mnist", "--out", str(trained), "--resume", "--no-progress", *sets, *bad]
    if "--steps" not in bad:
        args += ["--steps", steps]
    assert main(args) == 2
    capsys.readouterr()
    assert snapshot(trained) == before


def test_evaluation_settings_that_cannot_work_are_refused_before_a_run_dir_exists(tmp_path, mnist_dir, capsys,
                                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _train(mnist_dir, tmp_path / "runs" / "new", 4, "train.eval_every=2", "train.eval_extractor=mnist",
                  "train.eval_metrics=[fid, bogus]")
    assert code == 2
    _one_line(capsys, "train.eval_metrics: bogus cannot be computed during training")
    assert not (tmp_path / "runs").exists()  # not even the parent it would have made


def test_a_data_error_in_a_fresh_place_leaves_no_empty_folders(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "run"
    code = main(["train", "dcgan-folder", "--data", str(tmp_path / "missing"), "--out", str(out), "--steps", "2"])
    assert code == 2
    capsys.readouterr()
    assert list(tmp_path.iterdir()) == []


def test_a_dataset_that_is_not_resized_refuses_an_image_size(tmp_path, capsys):
    code = main(["train", "dcgan-mnist", "--data", "embedded", "--set", "data.image_size=64", "--steps", "2",
                 "--out", str(tmp_path / "r")])
    assert code == 2
    _one_line(capsys, "data.image_size=64 resizes image folders; 'embedded' holds 28x28 images")
    assert not (tmp_path / "r").exists()


def test_a_resumed_run_keeps_its_checkpoint_steps_tensorboard_events(trained, mnist_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sets = [a for s in without_steps(tiny_overrides(mnist_dir)) for a in ("--set", s)]
    assert main(["train", "gan2014-mnist", "--out", str(trained), "--steps", "9", "--resume", "--no-progress",
                 *sets]) == 0
    ea = EventAccumulator(str(trained / "tb"))
    ea.Reload()
    steps = sorted({e.step for e in ea.Scalars("loss/D/total")})
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted({r["step"] for r in rows if "loss/D/total" in r}) and 6 in steps


# ---------------------------------------------------------------------------------------------- outputs


def test_samples_to_a_png_make_one_grid_and_the_temp_name_is_unique(trained, tmp_path, capsys):
    assert main(["sample", str(trained), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    with Image.open(tmp_path / "s.png") as im:
        assert im.format == "PNG" and im.size[0] > 4 * 28
    (tmp_path / ".t.npz.tmp.npz").mkdir()  # the fixed temp name two writers used to share
    assert main(["sample", str(trained), "--n", "4", "--out", str(tmp_path / "t.npz")]) == 0
    with np.load(tmp_path / "t.npz") as z:
        assert z["images"].shape == (4, 28, 28, 1)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".t.npz.") and p.is_file()]


@pytest.fixture
def p2p(tmp_path, aligned_dir, capsys):
    run = tmp_path / "p2p"
    sets = ["model.width_g=4", "model.width_d=4", "model.patch_layers=1", "train.batch_size=4",
            "train.sample_every=1000", "train.checkpoint_every=1000", "train.sample_grid=2", "optim.linear_decay_start=0"]
    assert main(["train", "pix2pix-edges2fashion", "--data", str(aligned_dir), "--out", str(run), "--steps", "2",
                 "--no-progress", *[a for s in sets for a in ("--set", s)]]) == 0
    capsys.readouterr()
    return run


def test_translate_writes_every_input_even_where_names_clash(p2p, aligned_dir, tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    a = np.asarray(Image.open(next((aligned_dir / "test").iterdir())).convert("L"))[:, :32]
    Image.fromarray(a).save(src / "a.png")
    Image.fromarray(255 - a).save(src / "a.bmp")
    Image.fromarray(a[::-1].copy()).save(src / "sub" / "a.png")
    assert main(["translate", str(p2p), "--input", str(src), "--out", str(tmp_path / "out")]) == 0
    got = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert got == ["a-bmp.png", "a-png.png", "sub/a.png"]


def test_translate_on_a_full_disk_leaves_no_partial_output_and_says_what_to_do(p2p, aligned_dir, tmp_path, capsys,
                                                                             monkeypatch):
    saved = []
    real = Image.Image.save

    def fill_after_two(self, fp, *a, **k):
        if len(saved) >= 2:
            with open("/dev/full", "wb") as f:
                f.write(b"\0" * 65536)
        saved.append(fp)
        return real(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", fill_after_two)
    out = tmp_path / "out"
    assert main(["translate", str(p2p), "--input", str(aligned_dir / "test"), "--out", str(out)]) == 2
    line = _one_line(capsys, "no space left")
    assert "--resume" not in line and "run it again" in line
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_translate_refuses_an_out_that_is_a_file_and_a_huge_image(p2p, tmp_path, capsys):
    f = tmp_path / "taken.txt"
    f.write_text("mine")
    assert main(["translate", str(p2p), "--input", str(tmp_path), "--out", str(f)]) == 2
    _one_line(capsys, "is a file: --out takes FILE.npz or a folder")
    assert f.read_text() == "mine"
    big = tmp_path / "big"
    big.mkdir()
    Image.new("L", (5000, 8)).save(big / "wide.png")
    assert main(["translate", str(p2p), "--input", str(big), "--out", str(tmp_path / "o")]) == 2
    _one_line(capsys, "larger than 4096 pixels a side")


def test_evaluate_refuses_sample_counts_that_mean_nothing(p2p, capsys):
    for n in ("0", "-5"):
        assert main(["evaluate", str(p2p), "--n", n]) == 2
        _one_line(capsys, "--n must be at least 1")
    assert main(["evaluate", str(p2p), "--n", "1"]) == 0  # one test pair: l1, psnr, ssim of that pair
    assert "1 test pairs" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- one line, not a traceback


def _png_claiming(path, w, h):
    """A valid 1x1 PNG whose header says w x h (what a decompression bomb's header says)."""
    Image.new("L", (1, 1)).save(path)
    b = bytearray(path.read_bytes())
    ihdr = b[12:29]
    ihdr[4:12] = struct.pack(">II", w, h)
    b[12:29] = ihdr
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(b))


def test_inputs_a_user_will_meet_are_one_line_not_a_traceback(trained, tmp_path, mnist_dir, capsys):
    gz = tmp_path / "gz"
    gz.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (gz / name).write_bytes((mnist_dir / name).read_bytes())
    raw = bytearray((gz / "train-images-idx3-ubyte.gz").read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)  # a damaged deflate block inside a valid gzip header
    (gz / "train-images-idx3-ubyte.gz").write_bytes(bytes(raw))
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    _png_claiming(bomb / "x.png", 20000, 20000)
    yaml = tmp_path / "cfg.yaml"
    yaml.write_bytes(b"name: \xff\xfe bad\n")
    npy = tmp_path / "s.npz"
    np.save(tmp_path / "s.npy", np.zeros((2, 28, 28, 1), np.uint8))
    (tmp_path / "s.npy").rename(npy)
    cases = [
        (["train", "gan2014-mnist", "--data", str(gz), "--steps", "2", "--out", str(tmp_path / "r1")], "corrupt data file"),
        (["train", "dcgan-folder", "--data", str(bomb), "--steps", "2", "--out", str(tmp_path / "r2")], "x.png"),
        (["train", str(yaml), "--out", str(tmp_path / "r3")], "not a UTF-8 text file"),
        (["evaluate", str(npy), "--metrics", "fid"], "not an .npz archive"),
        (["train", "quickstart", "--seed", "99999999999999999999999", "--out", str(tmp_path / "r4")],
         "train.seed: 99999999999999999999999 is out of range [0, 9223372036854775807]"),
    ]
    for args, want in cases:
        assert main(args) == 2, args
        _one_line(capsys, want)
    (trained / "config.json").write_text((trained / "config.json").read_text()[:40])
    assert main(["report", str(trained)]) == 2
    _one_line(capsys, "config.json is not valid JSON")


def test_a_checkpoint_that_would_run_code_is_refused_without_torchs_advice_to_unpickle_it(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pt"
    torch.save({"format": 2, "nets": {"G": Evil()}}, p)
    assert main(["sample", str(p), "--n", "2", "--out", str(tmp_path / "s.npz")]) == 2
    line = _one_line(capsys, "loading them could run code, so it is refused")
    assert "weights_only" not in line and "pwned" not in capsys.readouterr().out


def test_checkpoints_and_outputs_follow_the_umask_like_every_other_file(trained):
    import os

    mode = lambda p: os.stat(p).st_mode & 0o777  # noqa: E731
    assert mode(latest_checkpoint(trained)) == mode(trained / "metrics.jsonl") == mode(trained / "config.json")
