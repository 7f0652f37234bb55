"""A folder of images (PNG/JPEG, grayscale or RGB) -> uint8 tensor (N, C, S, S)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

EXTENSIONS = {".png", ".jpg", ".jpeg"}
GRAY_MODES = ("L", "1", "I;16", "I")  # PIL modes of one-channel images


def image_files(root: Path) -> list[Path]:
    """The image files under root, recursively, sorted by path; none is a UserError."""
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"no images (.png, .jpg, .jpeg) in folder {root}")
    return files


def open_images(files: list[Path]) -> list[Image.Image]:
    """Read every file into memory; an unreadable one is a UserError naming it."""
    images = []
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise UserError(f"unreadable image {p}: {e}") from None
    return images


def _resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to `size` (bicubic), then cut the central size x size square."""
    w, h = img.size
    s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return img.crop((left, top, left + size, top + size))


def load_folder(root: str | Path, image_size: int = 0, channels: int = 0) -> torch.Tensor:
    """All images under `root` (recursively, sorted by path).

    image_size=0 keeps the files' size (then all must match); channels=0 takes RGB if any file has colour.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"image folder not found: {root}")
    files = image_files(root)
    images = open_images(files)
    if channels == 0:
        channels = 1 if all(im.mode in GRAY_MODES for im in images) else 3
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels}")
    mode = "L" if channels == 1 else "RGB"
    arrays = []
    for p, im in zip(files, images):
        im = im.convert(mode)
        if image_size:
            im = _resize_center_crop(im, image_size)
        arrays.append(np.asarray(im, dtype=np.uint8).reshape(im.size[1], im.size[0], channels))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise UserError(
            f"images in {root} have mismatched sizes {sorted(s[:2] for s in shapes)[:3]}...; "
            "set data.image_size to resize and centre-crop them"
        )
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    return x
