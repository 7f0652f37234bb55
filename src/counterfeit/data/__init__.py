"""Datasets held in memory as uint8 tensors (N, C, H, W), batched by indexing.

`load_data(name_or_path, split)` resolves a name (embedded, mnist, fashion-mnist, cifar10) or a path (a folder
of IDX files, of CIFAR batches, or of images) to an ImageData. Conversion to float happens per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..errors import UserError
from . import fetch
from .cifar import find_cifar_dir, load_cifar10
from .folder import load_folder
from .idx import load_idx_pair

NAMES = ["embedded", "mnist", "fashion-mnist", "cifar10", "edges2fashion", "edges2fashion-unpaired", "colorize"]
SPLITS = ["train", "test", "paper-train", "paper-valid", "all"]


@dataclass
class ImageData:
    x: torch.Tensor  # uint8 (N, C, H, W)
    y: torch.Tensor | None  # int64 (N,) or None
    name: str
    num_classes: int = 0

    def __post_init__(self):
        # images: uint8 (N, C, H, W); toy data: float32 (N, D)
        assert (self.x.dtype == torch.uint8 and self.x.ndim == 4) or (self.x.is_floating_point() and self.x.ndim == 2), \
            (self.x.dtype, self.x.shape)
        if self.y is not None:
            self.num_classes = int(self.y.max()) + 1 if len(self.y) else 0

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def index_groups(self) -> list[dict[str, torch.Tensor]]:
        """The named fields, grouped by the index they share (data.sampler.Batches): [{"x"}] or [{"x", "y"}]."""
        return [{"x": self.x} if self.y is None else {"x": self.x, "y": self.y}]

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    def subset(self, start: int, stop: int) -> "ImageData":
        return ImageData(self.x[start:stop], None if self.y is None else self.y[start:stop], self.name)

    def pixel_marginals(self) -> torch.Tensor:
        """Mean of each pixel over the set, in [0, 1]: (C, H, W) float32."""
        return self.x.float().mean(0) / 255.0


def to_float(x: torch.Tensor, range_: str) -> torch.Tensor:
    """uint8 batch -> float32 in [0, 1] ("01") or [-1, 1] ("pm1"); toy (float) data pass through."""
    if x.is_floating_point():
        return x
    x = x.float() / 255.0
    return x if range_ == "01" else x * 2.0 - 1.0


def to_uint8(x: torch.Tensor, range_: str) -> torch.Tensor:
    """float batch in the nets' range -> uint8, rounded and clipped."""
    if range_ == "pm1":
        x = (x + 1.0) / 2.0
    return (x.clamp(0, 1) * 255.0).round().to(torch.uint8)


def _embedded() -> tuple[torch.Tensor, torch.Tensor]:
    root = resources.files("counterfeit") / "data" / "embedded"
    with resources.as_file(root / "mnist-10k-images-idx3-ubyte.gz") as xi, resources.as_file(
        root / "mnist-10k-labels-idx1-ubyte.gz"
    ) as yi:
        return load_idx_pair(xi, yi)


def _idx_dir(d: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    paths = fetch.idx_paths(d)
    pre = "train" if train else "t10k"
    images, labels = paths[f"{pre}-images-idx3-ubyte"], paths[f"{pre}-labels-idx1-ubyte"]
    if images is None:
        raise UserError(f"no {pre}-images-idx3-ubyte[.gz] in {d}")
    return load_idx_pair(images, labels)


def _split(x, y, split: str, name: str, has_test: bool, load_test):
    if split not in SPLITS:
        raise UserError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")
    if split == "test":
        if not has_test:
            raise UserError(f"dataset '{name}' has no test split")
        return load_test()
    if split in ("paper-train", "paper-valid") and x.shape[0] == 60000:
        # The 2014 paper's MNIST protocol: train[0:50000] to train, train[50000:60000] to validate.
        s = slice(0, 50000) if split == "paper-train" else slice(50000, 60000)
        return x[s], None if y is None else y[s]
    if split == "paper-valid":
        raise UserError(f"split 'paper-valid' needs the full 60,000-image training set; '{name}' has {x.shape[0]}")
    if split == "all" and has_test:
        xt, yt = load_test()
        return torch.cat([x, xt]), None if y is None or yt is None else torch.cat([y, yt])
    return x, y


def load_data(name: str, split: str = "train", image_size: int = 0, channels: int = 0, limit: int = 0):
    """Resolve a dataset name or path and return the requested split in memory: an ImageData, or for a translation
    task (data/translation.py) a TranslationData of two domains."""
    if name.startswith("toy:"):
        return _toy(name, split, limit)
    from .translation import is_translation, load_translation

    if is_translation(name):  # two domains A and B (edges2fashion, colorize, the authors' folder layouts)
        return load_translation(name, split, image_size, channels, limit)
    if name == "embedded":
        x, y = _embedded()
        x, y = _split(x, y, split if split != "paper-train" else "train", name, False, None)
    elif name in ("mnist", "fashion-mnist"):
        d = fetch.locate(name)
        x, y = _idx_dir(d, train=True)
        x, y = _split(x, y, split, name, True, lambda: _idx_dir(d, train=False))
    elif name == "cifar10":
        d = fetch.locate(name)
        x, y = load_cifar10(d, train=True)
        x, y = _split(x, y, split, name, True, lambda: load_cifar10(d, train=False))
    else:
        p = Path(name).expanduser()
        if not p.exists():
            raise UserError(f"unknown dataset '{name}': not one of {', '.join(NAMES)} and no such path")
        if p.is_file() and p.suffix == ".npz":
            x, y = load_npz(p), None
        elif p.is_dir() and any(fetch.idx_paths(p)[k] for k in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")):
            paths = fetch.idx_paths(p)
            has_train, has_test = paths["train-images-idx3-ubyte"] is not None, paths["t10k-images-idx3-ubyte"] is not None
            if split != "test" and not has_train:  # never train on the test digits because train files are missing
                raise UserError(f"no train-images-idx3-ubyte[.gz] in {p} for split '{split}' (the folder has "
                                "test files only: set data.split=test to use them)")
            x, y = _idx_dir(p, train=has_train)
            x, y = _split(x, y, split, name, has_test, lambda: _idx_dir(p, train=False))
        elif p.is_dir() and find_cifar_dir(p) is not None:
            x, y = load_cifar10(p, train=split != "test")
        elif p.is_dir():
            x, y = load_folder(p, image_size=image_size, channels=channels), None
            image_size = channels = 0  # applied
        else:
            raise UserError(f"can't read dataset from {p}: expected a folder (IDX, CIFAR batches or images) or .npz")
    refuse_unapplied(name, x, image_size, channels)
    if limit:
        x, y = x[:limit], None if y is None else y[:limit]
    if x.shape[0] == 0:
        raise UserError(f"dataset '{name}' split '{split}' is empty")
    return ImageData(x.contiguous(), y, name)


def refuse_unapplied(name: str, x: torch.Tensor, image_size: int, channels: int) -> None:
    """data.image_size / data.channels act on image folders only: elsewhere a value the images do not have would
    be ignored, and the run would train at a size nobody asked for."""
    c, h, w = x.shape[1:]
    if image_size and (h, w) != (image_size, image_size):
        raise UserError(f"data.image_size={image_size} resizes image folders; '{name}' holds {h}x{w} images and is "
                        "not resized: leave data.image_size at 0, or train on a folder of images")
    if channels and c != channels:
        raise UserError(f"data.channels={channels} converts image folders; '{name}' images have {c} channel(s): "
                        "leave data.channels at 0")


def load_npz(p: Path) -> torch.Tensor:
    """A samples file as written by `counterfeit sample`: uint8 `images` (N, H, W, C) -> (N, C, H, W)."""
    import zipfile

    import numpy as np

    try:
        z = np.load(p, allow_pickle=False)
        if not hasattr(z, "files"):  # a .npy renamed .npz: one bare array, not an archive
            raise UserError(f"{p}: not an .npz archive (a single array: save it with np.savez(path, images=...))")
        with z:
            if "images" not in z:
                raise UserError(f"{p}: no array named 'images' (it holds {', '.join(z.files) or 'nothing'})")
            a = z["images"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise UserError(f"corrupt samples file {p}: {str(e).splitlines()[0][:200] or type(e).__name__}") from None
    if not isinstance(a, np.ndarray):  # a member that is not in NumPy's .npy format comes back as bytes
        raise UserError(f"corrupt samples file {p}: its 'images' member is not a NumPy array")
    if a.dtype != np.uint8 or a.ndim != 4:
        raise UserError(f"{p}: 'images' must be uint8 (N, H, W, C), got {a.dtype} {a.shape}")
    if a.shape[3] not in (1, 3) and a.shape[1] in (1, 3):
        raise UserError(f"{p}: 'images' {a.shape} looks like (N, C, H, W); samples files hold (N, H, W, C): "
                        "transpose it with a.transpose(0, 2, 3, 1)")
    return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()


# image shapes (C, H, W) of the named datasets, known without reading them
SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "embedded": (1, 28, 28), "cifar10": (3, 32, 32)}


def image_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of dataset `name`'s images: from the table above, else read from its test split."""
    return SHAPES.get(name) or tuple(load_data(name, "test").x.shape[1:])


def describe_shape(shape) -> str:
    c, h, w = shape
    return f"{h}x{w} with {c} channel{'s' if c != 1 else ''}"


TOY_SIZE = 100_000


def _toy(name: str, split: str, limit: int) -> ImageData:
    """toy:gauss1d (the paper's Figure 1), toy:ring8, toy:grid25: a fixed draw of 100,000 points per split."""
    from .toy import TOYS, gaussian_1d, sample_mixture

    kind = name[4:]
    seed = {"train": 0, "paper-train": 0, "test": 1, "paper-valid": 2, "all": 0}.get(split)
    if seed is None:
        raise UserError(f"unknown split '{split}' (known: {', '.join(SPLITS)})")
    g = torch.Generator().manual_seed(seed)
    n = limit or TOY_SIZE
    if kind == "gauss1d":
        x = gaussian_1d(n, generator=g)
    elif kind in TOYS:
        x = sample_mixture(kind, n, generator=g)
    else:
        raise UserError(f"unknown toy dataset '{name}' (known: toy:gauss1d, {', '.join('toy:' + k for k in TOYS)})")
    return ImageData(x.float().contiguous(), None, name)
