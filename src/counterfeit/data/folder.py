"""A folder of images (PNG, JPEG, BMP, GIF, TIFF, WebP; every image mode Pillow reads) -> uint8 tensor (N, C, S, S).

How each mode becomes 8-bit (`as_8bit`): 1 -> 0 / 255; L, RGB as they are; LA, RGBA, PA drop their alpha; P through
its palette; CMYK and YCbCr by Pillow's conversion to RGB; I;16 (16-bit) divided by 257, so 65535 -> 255 exactly;
I (32-bit integer) read as 8-bit when its values fit 0..255 and as 16-bit when they fit 0..65535, refused beyond;
F (float) read as [0, 1] and refused outside it or with NaN. Nothing is clipped silently."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
GRAY_MODES = ("1", "L", "LA", "La", "I", "F", *SIXTEEN_BIT)  # PIL modes of one-channel images


def image_files(root: Path) -> list[Path]:
    """The image files under root, recursively, sorted by path; none is a UserError."""
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"no images ({', '.join(sorted(EXTENSIONS))}) in folder {root}")
    return files


MAX_SIDE = 4096  # pixels: a larger image would take gigabytes as the networks' float tensors


def open_images(files: list[Path], max_side: int = MAX_SIDE) -> list[Image.Image]:
    """Read every file into memory; an unreadable one, or one with a side over max_side (its header is read
    first: a file that claims 20000x20000 is refused before it is decoded), is a UserError naming it."""
    images = []
    for p in files:
        try:
            with Image.open(p) as im:
                if max(im.size) > max_side:
                    raise UserError(f"image {p} is {im.size[0]}x{im.size[1]}: larger than {max_side} pixels a side; "
                                    "scale it down first")
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
            raise UserError(f"unreadable image {p}: {e}") from None
    return images


def is_gray(im: Image.Image) -> bool:
    """One channel, or a palette whose colours in use are all grey."""
    if im.mode in GRAY_MODES:
        return True
    if im.mode in ("P", "PA"):
        a = np.asarray(im.convert("RGB"))
        return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())
    return False


def as_8bit(im: Image.Image, path: Path, channels: int) -> Image.Image:
    """`im` as an 8-bit "L" (channels 1) or "RGB" (channels 3) image, each mode scaled as the module says."""
    mode = im.mode
    if mode in SIXTEEN_BIT or mode in ("I", "F"):
        a = np.asarray(im)
        if mode == "F":
            if not np.isfinite(a).all():
                raise UserError(f"unreadable image {path}: float image (mode F) with NaN or infinite values")
            lo, hi = float(a.min()), float(a.max())
            if lo < 0.0 or hi > 1.0:
                raise UserError(f"unreadable image {path}: float image (mode F) with values in [{lo:g}, {hi:g}]; "
                                "float images are read as [0, 1]")
            a = a.astype(np.float64) * 255.0
        elif mode == "I":
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi > 65535:
                raise UserError(f"unreadable image {path}: 32-bit integer pixels (mode I) span {lo}..{hi}; they are "
                                "read as 8-bit (0..255) or 16-bit (0..65535) values: save it with one of those depths")
            a = a / 257.0 if hi > 255 else a
        else:
            a = a.astype(np.float64) / 257.0
        im = Image.fromarray(np.rint(a).astype(np.uint8), "L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA")
    try:
        return im.convert("L" if channels == 1 else "RGB")
    except ValueError as e:
        raise UserError(f"unreadable image {path}: mode {mode} ({e})") from None


def warn_upscale(sizes, image_size: int, where) -> None:
    """One line when data.image_size scales the images up more than 2x: a bigger network on interpolated pixels,
    which nobody asked for by bringing small images."""
    small = min((min(w, h) for w, h in sizes), default=image_size)
    if image_size > 2 * small:
        print(f"warning: data.image_size={image_size} scales the {small}-pixel sides of the images in {where} up "
              f"{image_size / small:.1f}x (a larger network on interpolated pixels); data.image_size=0 keeps their "
              "size", file=sys.stderr, flush=True)


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
        channels = 1 if all(is_gray(im) for im in images) else 3
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels}")
    if image_size:
        warn_upscale([im.size for im in images], image_size, root)
    arrays = []
    for p, im in zip(files, images):
        im = as_8bit(im, p, channels)
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
