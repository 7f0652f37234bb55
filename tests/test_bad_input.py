"""Bad input, as a new user would give it: every case ends in exit 2 and exactly one line on stderr, with no
traceback, and leaves the run dir and the data it was pointed at byte-for-byte as they were (issue 18).

The corpus is files this test writes (corrupt gzip, images in odd modes, bad .npz, bad checkpoints) and `--set`
values generated from the config's own fields; a hypothesis property test draws more `--set` values."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import typing
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from counterfeit import config
from counterfeit.cli.__main__ import main
from conftest import tiny_overrides, write_mnist_like


def _sets(items):
    return sum([["--set", s] for s in items], [])


@pytest.fixture(scope="module")
def world(tmp_path_factory, digits):
    """A small MNIST-layout folder and one real trained run on it, shared by every case (and never changed)."""
    root = tmp_path_factory.mktemp("bad-input")
    data = write_mnist_like(root / "mnist", digits, 200, 100)
    x, y = digits.x[:, 0].numpy(), digits.y.numpy()
    run = root / "run"
    assert main(["train", "gan2014-mnist", "--no-progress", "--out", str(run), *_sets(tiny_overrides(data, 4))]) == 0
    ckpt = sorted((run / "checkpoints").glob("step-*.pt"))[-1]
    return {"data": data, "run": run, "ckpt": ckpt, "x": x, "y": y}


def _tree(*roots: Path) -> dict:
    out = {}
    for r in roots:
        for p in sorted(Path(r).rglob("*")):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def _mnist_like(dst: Path, w, **replace: bytes) -> Path:
    """A copy of the world's MNIST folder with some of its files replaced by the given bytes."""
    dst.mkdir()
    for p in w["data"].iterdir():
        (dst / p.name).write_bytes(replace.get(p.name.split("-")[0] + "_" + p.name.split("-")[1], p.read_bytes()))
    return dst


def _idx_bytes(a: np.ndarray, code: int = 0x08) -> bytes:
    import struct

    a = np.ascontiguousarray(a)
    return bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def _flip_middle(blob: bytes) -> bytes:
    b = bytearray(blob)
    for i in range(len(b) // 2, len(b) // 2 + 64):
        b[i] ^= 0x5A
    return bytes(b)


def _png(mode: str, a: np.ndarray, path: Path) -> Path:
    Image.fromarray(a).convert(mode).save(path)
    return path


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _train(w, tmp, *extra, data=None):
    return ["train", "gan2014-mnist", "--no-progress", "--out", str(tmp / "new-run"),
            *_sets(tiny_overrides(data or w["data"], 4)), *extra]


def _train_flags(w, tmp, *flags):
    """train with --steps / --epochs flags, and no train.steps / train.epochs of its own to conflict with."""
    sets = [s for s in tiny_overrides(w["data"], 4) if not s.startswith(("train.steps=", "train.epochs="))]
    return ["train", "gan2014-mnist", "--no-progress", "--out", str(tmp / "new-run"), *_sets(sets), *flags]


def _train_data(w, tmp, data):
    return _train(w, tmp, "--set", f"data.name={data}", data=data)


def _eval_npz(w, tmp, path, *extra):
    return ["evaluate", str(path), "--data", "mnist", "--metrics", "fid", *extra]


def _npz_case(**arrays):
    """A builder: evaluate a samples file holding these arrays."""
    return lambda w, t: _eval_npz(w, t, _npz(t / "s.npz", **arrays))


def _bad_ckpt(tmp, blob: bytes) -> Path:
    p = tmp / "step-00000004.pt"
    p.write_bytes(blob)
    return p


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _gz(blob: bytes) -> bytes:
    return gzip.compress(blob, mtime=0)


# each case: (id, builder(world, tmp) -> argv, a fragment the one line must hold)
FILES = [
    # ---- IDX data files
    ("gz-truncated", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=(
        w["data"] / "train-images-idx3-ubyte.gz").read_bytes()[:500])), "corrupt data file"),
    ("gz-bytes-flipped", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=_flip_middle(
        (w["data"] / "train-images-idx3-ubyte.gz").read_bytes()))), "corrupt data file"),
    ("gz-bad-crc", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=(
        lambda b: b[:-8] + bytes([b[-8] ^ 1]) + b[-7:])((w["data"] / "train-images-idx3-ubyte.gz").read_bytes()))),
     "corrupt data file"),
    ("gz-header-only", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=b"\x1f\x8b\x08\x00")),
     "corrupt data file"),
    ("idx-random-bytes", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=bytes(range(256)) * 9)),
     "corrupt data file"),
    ("idx-empty", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=b"")), "corrupt data file"),
    ("idx-float-type", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=_gz(_idx_bytes(
        w["x"][:200].astype(">f4"), 0x0D)))), "unsupported IDX element type"),
    ("idx-too-short", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=_gz(_idx_bytes(
        w["x"][:200])[:-100]))), "header promises"),
    ("idx-images-2d", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_images=_gz(_idx_bytes(
        w["x"][:200].reshape(200, -1))))), "expected an (N, H, W) image file"),
    ("labels-count", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_labels=_gz(_idx_bytes(
        w["y"][:150].astype(np.uint8))))), "150 labels for 200 images"),
    ("labels-2d", lambda w, t: _train_data(w, t, _mnist_like(t / "d", w, train_labels=_gz(_idx_bytes(
        w["y"][:200].astype(np.uint8).reshape(100, 2))))), "labels"),
    ("labels-out-of-range", lambda w, t: ["train", "cgan-mnist", "--no-progress", "--out", str(t / "new-run"),
     "--data", str(_mnist_like(t / "d", w, train_labels=_gz(_idx_bytes(np.where(w["y"][:200] == 3, 12,
                                                                                w["y"][:200]).astype(np.uint8))))),
     "--steps", "2", "--set", "data.split=train", "--set", "train.batch_size=20"], "label"),
    ("data-file-is-a-folder", lambda w, t: _train_data(w, t, (lambda d: ((d / "train-images-idx3-ubyte.gz").unlink(),
     (d / "train-images-idx3-ubyte.gz").mkdir(), d)[-1])(_mnist_like(t / "d", w))), "train-images-idx3-ubyte"),
    # ---- image folders
    ("folder-empty", lambda w, t: _train_data(w, t, (t / "imgs").mkdir() or t / "imgs"), "no images"),
    ("folder-text-as-png", lambda w, t: _train_data(w, t, (lambda d: (d.mkdir(), (d / "a.png").write_text("hi"),
                                                                       d)[-1])(t / "imgs")), "unreadable image"),
    ("folder-truncated-png", lambda w, t: _train_data(w, t, (lambda d: (d.mkdir(), _png("L", w["x"][0], d / "a.png"),
     (d / "b.png").write_bytes((d / "a.png").read_bytes()[:60]), d)[-1])(t / "imgs")), "unreadable image"),
    ("folder-empty-jpg", lambda w, t: _train_data(w, t, (lambda d: (d.mkdir(), (d / "a.jpg").write_bytes(b""),
                                                                     d)[-1])(t / "imgs")), "unreadable image"),
    ("folder-mixed-sizes", lambda w, t: _train_data(w, t, (lambda d: (d.mkdir(), _png("L", w["x"][0], d / "a.png"),
     _png("L", np.zeros((20, 20), np.uint8), d / "b.png"), d)[-1])(t / "imgs")), "mismatched sizes"),
    ("folder-int32-beyond-16-bit", lambda w, t: _train_data(w, t, (lambda d: (d.mkdir(), Image.fromarray(
        (w["x"][0].astype(np.int32) * 70000)).save(d / "a.tiff"), d)[-1])(t / "imgs")), "mode I"),
    ("folder-float-beyond-1", lambda w, t: _train_data(w, t, (lambda d: (d.mkdir(), Image.fromarray(
        w["x"][0].astype(np.float32)).save(d / "a.tiff"), d)[-1])(t / "imgs")), "float image"),
    ("folder-float-nan", lambda w, t: _train_data(w, t, (lambda d: (d.mkdir(), Image.fromarray(
        np.full((28, 28), np.nan, np.float32)).save(d / "a.tiff"), d)[-1])(t / "imgs")), "float image"),
    # ---- samples files for evaluate
    ("npz-missing-key", _npz_case(pictures=np.zeros((4, 28, 28, 1), np.uint8)), "no array named 'images'"),
    ("npz-zero-images", _npz_case(images=np.zeros((0, 28, 28, 1), np.uint8)), "no images"),
    ("npz-one-image", _npz_case(images=np.zeros((1, 28, 28, 1), np.uint8)), "at least 2"),
    ("npz-nchw", _npz_case(images=np.zeros((8, 1, 28, 28), np.uint8)), "(N, H, W, C)"),
    ("npz-wrong-size", _npz_case(images=np.zeros((8, 32, 32, 1), np.uint8)), "28x28"),
    ("npz-wrong-channels", _npz_case(images=np.zeros((8, 28, 28, 3), np.uint8)), "channel"),
    ("npz-float", _npz_case(images=np.zeros((8, 28, 28, 1), np.float32)), "uint8"),
    ("npz-3d", _npz_case(images=np.zeros((8, 28, 28), np.uint8)), "uint8"),
    ("npz-object", _npz_case(images=np.array([None, 1], dtype=object)), "corrupt samples file"),
    ("npz-text", lambda w, t: _eval_npz(w, t, ((t / "s.npz").write_text("not a zip"), t / "s.npz")[-1]),
     "corrupt samples file"),
    ("npz-truncated", lambda w, t: _eval_npz(w, t, (lambda p: (p.write_bytes(p.read_bytes()[:300]), p)[-1])(_npz(
        t / "s.npz", images=np.zeros((8, 28, 28, 1), np.uint8)))), "corrupt samples file"),
    ("npz-bad-member", lambda w, t: _eval_npz(w, t, (lambda p: (zipfile.ZipFile(p, "w").writestr("images.npy", b"x"
                                                                                                  * 100), p)[-1])(
        t / "s.npz")), "corrupt samples file"),
    ("npz-parzen-wrong-size", lambda w, t: ["evaluate", str(_npz(t / "s.npz", images=np.zeros((8, 20, 20, 1),
                                                                                                np.uint8))),
                                            "--data", "mnist", "--metrics", "parzen"], "28x28"),
    # ---- checkpoints
    ("ckpt-random-bytes", lambda w, t: ["sample", str(_bad_ckpt(t, bytes(range(256)) * 40)), "--out",
                                        str(t / "s.npz")], "cannot read checkpoint"),
    ("ckpt-empty", lambda w, t: ["sample", str(_bad_ckpt(t, b"")), "--out", str(t / "s.npz")],
     "cannot read checkpoint"),
    ("ckpt-truncated", lambda w, t: ["sample", str(_bad_ckpt(t, w["ckpt"].read_bytes()[:5000])), "--out",
                                     str(t / "s.npz")], "cannot read checkpoint"),
    ("ckpt-plain-tensors", lambda w, t: ["sample", str(_bad_ckpt(t, _torch_bytes({"w": torch.zeros(3)}))), "--out",
                                         str(t / "s.npz")], "not a counterfeit checkpoint"),
    ("ckpt-wrong-shapes", lambda w, t: ["sample", str(_bad_ckpt(t, _torch_bytes((lambda c: (
        c["nets"]["G"].update({k: torch.zeros(3) for k in list(c["nets"]["G"])[:1]}), c)[-1])(
        torch.load(w["ckpt"], weights_only=True))))), "--out", str(t / "s.npz")], "size mismatch"),
    ("ckpt-run-dir-without-checkpoints", lambda w, t: ["sample", str((t / "r" / "checkpoints").mkdir(parents=True)
                                                                     or t / "r"), "--out", str(t / "s.npz")],
     "no checkpoints"),
    # ---- the command line
    ("steps-negative", lambda w, t: _train_flags(w, t, "--steps", "-5"), "nothing to do"),
    ("steps-zero", lambda w, t: _train_flags(w, t, "--steps", "0"), "nothing to do"),
    ("epochs-zero", lambda w, t: _train_flags(w, t, "--epochs", "0"), "nothing to do"),
    ("steps-beside-set-steps", lambda w, t: _train_flags(w, t, "--steps", "5", "--set", "train.steps=9"),
     "conflicts with --set train.steps=9"),
    ("epochs-beside-set-steps", lambda w, t: _train_flags(w, t, "--epochs", "2", "--set", "train.steps=9"),
     "conflicts with --set train.steps=9"),
    ("steps-beside-set-epochs", lambda w, t: _train_flags(w, t, "--set", "train.epochs=3", "--steps", "5"),
     "conflicts with --set train.epochs=3"),
    ("sample-n-zero", lambda w, t: ["sample", str(w["run"]), "--n", "0", "--out", str(t / "s.npz")], "--n"),
    ("sample-n-negative", lambda w, t: ["sample", str(w["run"]), "--n", "-3", "--out", str(t / "s.npz")], "--n"),
    ("sample-out-exists", lambda w, t: ["sample", str(w["run"]), "--out", str(w["ckpt"])], "exists"),
    ("evaluate-n-zero", lambda w, t: ["evaluate", str(w["run"]), "--n", "0", "--metrics", "parzen"], "--n"),
    ("train-out-is-a-file", lambda w, t: ["train", "gan2014-mnist", "--out", str(w["ckpt"]),
                                          *_sets(tiny_overrides(w["data"], 4))], "not a folder"),
    ("resume-changed-config", lambda w, t: ["train", str(w["run"]), "--resume", "--out", str(w["run"]),
                                            "--set", "optim.lr_d=0.5"], "config"),
    ("resume-missing-run", lambda w, t: ["train", "gan2014-mnist", "--resume", "--out", str(t / "nothing")],
     "resume"),
    ("config-file-bad-yaml", lambda w, t: ["train", str((t / "c.yaml").write_text("train: [unclosed") and
                                                        t / "c.yaml")], "not valid YAML"),
    ("config-file-a-list", lambda w, t: ["train", str((t / "c.yaml").write_text("- 1\n- 2\n") and t / "c.yaml")],
     "mapping"),
]


def _leaf_fields():
    """(key, type, default) of every leaf in the config tree."""
    out = []

    def walk(obj, prefix):
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                walk(v, f"{prefix}{f.name}.")
            else:
                out.append((f"{prefix}{f.name}", hints[f.name], v))

    walk(config.Config(), "")
    return out


WRONG_TYPE = {int: "many", float: "fast", bool: "maybe", list: "{a: 1}", str: "[1, 2]"}
# values of the right type that no setting can use
OUT_OF_RANGE = [
    "train.batch_size=0", "train.batch_size=-4", "train.log_every=0", "train.threads=-1", "model.z_dim=0",
    "data.image_size=-3", "data.limit=-1", "train.steps=-5", "train.epochs=-1", "optim.lr_g=-0.1", "optim.lr_d=nan",
    "optim.lr_g=inf", "model.d_input_keep=1.5", "model.d_hidden_keep=0", "optim.betas=[1.5, 0.9]", "optim.betas=[0.5]",
    "model.g_hidden=[-3]", "model.g_hidden=[0, 12]", "model.d_hidden=[8, 2.5]", "train.n_dis=0", "model.pack=0",
    "loss.pool_size=-1", "train.keep_checkpoints=-1", "optim.momentum=-0.1", "optim.lr_decay=0", "model.g_hidden=[a, b]", "train.ema_decay=1.0",
    "loss.real_label=0", "loss.real_label=1.5", "optim.momentum=1.2", "loss.gp_weight=-1",
    "train.max_minutes=nan", "train.eval_samples=0", "train.parzen_monitor_samples=0", "data.channels=2",
    "train.sample_grid=0", "model.d_pieces=0", "model.d_units=0", "loss.d_scale=0",
]
SETS = [(f"set-{k}-wrong-type", [f"{k}={WRONG_TYPE[tp]}"], k) for k, tp, _ in _leaf_fields()] + \
       [(f"set-{s.split('=')[0]}={s.split('=')[1]}", [s], s.split("=")[0]) for s in OUT_OF_RANGE]


def _check(capsys, argv, fragment, before: dict, roots):
    code = main(argv)
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert code == 2, (code, out.err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("counterfeit: error: "), out.err[-2000:]
    assert "Traceback" not in out.err
    assert fragment in lines[0], lines[0]
    assert _tree(*roots) == before


@pytest.mark.parametrize("builder,fragment", [c[1:] for c in FILES], ids=[c[0] for c in FILES])
def test_a_bad_file_or_argument_is_one_line_exit_2_and_changes_nothing(world, tmp_path, capsys, builder, fragment):
    before = _tree(world["run"], world["data"])
    argv = builder(world, tmp_path)
    inputs = _tree(tmp_path)
    _check(capsys, argv, fragment, before, (world["run"], world["data"]))
    assert _tree(tmp_path) == inputs, "a refused command wrote or removed something"


@pytest.mark.parametrize("sets,fragment", [c[1:] for c in SETS], ids=[c[0] for c in SETS])
def test_a_bad_set_value_is_one_line_exit_2(world, tmp_path, capsys, sets, fragment):
    before = _tree(world["run"], world["data"])
    _check(capsys, _train(world, tmp_path, *_sets(sets)), fragment, before, (world["run"], world["data"]))
    assert not (tmp_path / "new-run").exists()


def test_the_corpus_is_large():
    assert len(FILES) >= 50 and len(SETS) >= 50


_KEYS = [k for k, _, _ in _leaf_fields()]
_junk = st.one_of(st.text(alphabet="abcxyz{}[]:,'\"!@#", min_size=1, max_size=8), st.sampled_from(
    ["-1", "-1e9", "1e999", "nan", "-inf", "[]", "[-1]", "{}", "null", "~", "''", "0x10", "true", "3.5"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(_KEYS), value=_junk)
def test_any_set_value_is_accepted_or_refused_in_one_line(world, tmp_path_factory, capsys, key, value):
    """Whatever the value, `--set key=value --dry-run` either resolves a config or ends in one line with exit 2."""
    code = main(["train", "gan2014-mnist", "--dry-run", "--set", f"{key}={value}"])
    out = capsys.readouterr()
    if code == 0:
        config.from_dict(__import__("json").loads(out.out))  # what it printed is a valid config
    else:
        lines = out.err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("counterfeit: error: "), out.err[-2000:]
