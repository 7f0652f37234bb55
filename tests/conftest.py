"""Shared fixtures: small real datasets written to tmp dirs (real MNIST digits from the embedded set)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("COUNTERFEIT_OFFLINE", "1")  # tests never reach for the network

from counterfeit import config  # noqa: E402
from counterfeit.data import load_data  # noqa: E402
from counterfeit.data.idx import write_idx  # noqa: E402
from counterfeit.loop import train  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    return load_data("embedded", "train")


@pytest.fixture
def mnist_dir(tmp_path, digits):
    """A folder laid out like MNIST: 400 train + 200 test real digits, gzipped IDX."""
    return write_mnist_like(tmp_path / "mini-mnist", digits, 400, 200)


def write_mnist_like(d, digits, n_train: int, n_test: int):
    """The first n_train + n_test real digits as an MNIST folder (gzipped IDX train / t10k files) at d."""
    d.mkdir()
    x, y = digits.x[:, 0].numpy(), digits.y.numpy()
    write_idx(d / "train-images-idx3-ubyte.gz", x[:n_train])
    write_idx(d / "train-labels-idx1-ubyte.gz", y[:n_train])
    write_idx(d / "t10k-images-idx3-ubyte.gz", x[n_train:n_train + n_test])
    write_idx(d / "t10k-labels-idx1-ubyte.gz", y[n_train:n_train + n_test])
    return d


def tiny_overrides(data_path, steps=6):
    """A small 2014-GAN config that trains in well under a second per step."""
    return [
        f"data.name={data_path}", "data.split=train", "model.g_hidden=[32, 32]", "model.d_units=16",
        "model.d_pieces=3", "model.z_dim=8", "train.batch_size=20", f"train.steps={steps}", "train.epochs=0",
        "train.log_every=2", "train.sample_every=3", "train.checkpoint_every=3", "train.sample_grid=4",
        "train.parzen_monitor_samples=50", "train.parzen_monitor_valid=20",
    ]


def without_steps(sets):
    """The overrides less train.steps / train.epochs, for a command that says --steps (the two would conflict)."""
    return [s for s in sets if not s.startswith(("train.steps=", "train.epochs="))]


@pytest.fixture(autouse=True)
def _deterministic_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def ring_run(tmp_path_factory):
    """A real 1,500-step toy2d-ema run on the ring of 8 (a few seconds)."""
    run = tmp_path_factory.mktemp("toy") / "run"
    cfg = config.load_config("toy2d-ema", ["data.name=toy:ring8", "train.steps=1500", "train.sample_every=1500",
                                           "train.checkpoint_every=1500"])
    train(cfg, run, progress=False)
    return run


@pytest.fixture
def cifar_dir(tmp_path):
    """A folder of 40 small RGB images (32x32) cut from real digits, coloured per image."""
    from counterfeit.data import load_data

    d = tmp_path / "rgb"
    d.mkdir()
    x = load_data("embedded", "train").x[:40, 0].numpy()
    for i, a in enumerate(x):
        rgb = (a[..., None] * torch.tensor([(i % 3) / 2, 1.0, ((i + 1) % 3) / 2]).numpy()).astype("uint8")
        Image.fromarray(rgb).resize((32, 32)).save(d / f"{i:03d}.png")
    return d


def save_png(a: np.ndarray, path):
    Image.fromarray(a).save(path)


def digits32(digits, n, start=0):
    """n real digits padded to 32x32: uint8 (n, 32, 32)."""
    return np.pad(digits.x[start : start + n, 0].numpy(), ((0, 0), (2, 2), (2, 2)))


@pytest.fixture
def aligned_dir(tmp_path, digits):
    """The authors' aligned layout: train/ and test/ of AB images, A = a digit, B = its negative."""
    root = tmp_path / "digits2neg"
    for split, n, start in (("train", 24, 0), ("test", 8, 100)):
        (root / split).mkdir(parents=True)
        for i, a in enumerate(digits32(digits, n, start)):
            save_png(np.concatenate([a, 255 - a], 1), root / split / f"{i:03d}.png")
    return root


@pytest.fixture
def unpaired_dir(tmp_path, digits):
    """The authors' unpaired layout: digits in trainA, other digits' negatives in trainB; test pairs kept apart."""
    root = tmp_path / "digits-neg"
    x = digits32(digits, 60)
    for sub, imgs in (("trainA", x[:20]), ("trainB", 255 - x[20:44]), ("testA", x[44:52]), ("testB", 255 - x[52:60])):
        (root / sub).mkdir(parents=True)
        for i, a in enumerate(imgs):
            save_png(a, root / sub / f"{i:03d}.png")
    return root
