"""CIFAR-10 in its python-pickle batches, read without executing code from the files."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]


class _SafeUnpickler(pickle.Unpickler):
    """CIFAR batches hold only dicts, lists, bytes and numpy arrays; refuse every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _load_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise UserError(f"CIFAR-10 batch not found: {path}") from None
    except Exception as e:  # truncated or foreign pickle
        raise UserError(f"corrupt CIFAR-10 batch {path}: {e}") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise UserError(f"corrupt CIFAR-10 batch {path}: missing 'data' or 'labels'")
    x = np.asarray(d[b"data"], dtype=np.uint8)
    y = np.asarray(d[b"labels"], dtype=np.int64)
    if x.ndim != 2 or x.shape[1] != 3072 or x.shape[0] != y.shape[0]:
        raise UserError(f"corrupt CIFAR-10 batch {path}: data shape {x.shape}, {y.shape[0]} labels")
    return x.reshape(-1, 3, 32, 32), y


def find_cifar_dir(root: Path) -> Path | None:
    """The folder holding data_batch_1 (root itself, cifar-10-batches-py/ below it, or an extracted tar)."""
    for cand in (root, root / "cifar-10-batches-py"):
        if (cand / "data_batch_1").is_file() or (cand / "test_batch").is_file():
            return cand
    tar = root / "cifar-10-python.tar.gz"
    if tar.is_file():
        try:
            with tarfile.open(tar) as t:
                t.extractall(root, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise UserError(f"corrupt archive {tar}: {e}") from None
        return find_cifar_dir(root) if (root / "cifar-10-batches-py").is_dir() else None
    return None


def load_cifar10(root: str | Path, train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """-> images uint8 (N, 3, 32, 32), labels int64 (N,)."""
    d = find_cifar_dir(Path(root))
    if d is None:
        raise UserError(f"no CIFAR-10 batches (data_batch_1..5, test_batch) in {root}")
    xs, ys = zip(*(_load_batch(d / b) for b in (TRAIN_BATCHES if train else TEST_BATCHES)))
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
