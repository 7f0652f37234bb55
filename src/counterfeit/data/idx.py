"""IDX files (MNIST, Fashion-MNIST), plain or gzipped, read into uint8 tensors."""

from __future__ import annotations

import gzip
import zlib
import struct
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

_DTYPES = {0x08: np.uint8}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally .gz) into a numpy array; corrupt files raise UserError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise UserError(f"data file not found: {path}") from None
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:  # zlib: a damaged deflate block inside
        raise UserError(f"corrupt data file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"corrupt data file {path}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise UserError(f"corrupt data file {path}: unsupported IDX element type 0x{code:02x}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise UserError(f"corrupt data file {path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    n = int(np.prod(shape))
    if len(raw) - header != n:
        raise UserError(
            f"corrupt data file {path}: header promises {n} values of shape {shape}, file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=_DTYPES[code], offset=header).reshape(shape)


def load_idx_pair(images: str | Path, labels: str | Path | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (N, H, W) -> uint8 tensor (N, 1, H, W); labels (N,) -> int64 tensor."""
    x = read_idx(images)
    if x.ndim != 3:
        raise UserError(f"{images}: expected an (N, H, W) image file, got shape {x.shape}")
    xt = torch.from_numpy(x.copy()).unsqueeze(1)  # (N, 1, H, W)
    yt = None
    if labels is not None:
        y = read_idx(labels)
        if y.shape != (x.shape[0],):
            raise UserError(f"{labels}: {y.shape[0] if y.ndim else 0} labels for {x.shape[0]} images")
        yt = torch.from_numpy(y.astype(np.int64))
    return xt, yt


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 array as IDX (gzip when the name ends in .gz). Used by tests and the embedded set."""
    path = Path(path)
    a = np.ascontiguousarray(array, dtype=np.uint8)
    blob = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        blob = gzip.compress(blob, compresslevel=9, mtime=0)
    path.write_bytes(blob)
