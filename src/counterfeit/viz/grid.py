"""Image grids and the training GIF."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (rows*(H+pad)+pad, cols*(W+pad)+pad, C) with a light border."""
    assert images.dtype == torch.uint8 and images.ndim == 4, (images.dtype, images.shape)
    n, c, h, w = images.shape
    cols = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    a = images.permute(0, 2, 3, 1).cpu().numpy()  # (N, H, W, C)
    for i in range(n):
        r, k = divmod(i, cols)
        out[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = a[i]
    return out


def to_pil(grid: np.ndarray, scale: int = 1) -> Image.Image:
    """A uint8 (H, W, C) array (make_grid's) as a PIL image, each pixel `scale` x `scale` (nearest neighbour)."""
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None, scale: int = 2) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(make_grid(images, nrow), scale).save(path)
    return path


def make_gif(frames: list[Path], path: Path, duration_ms: int = 200, max_frames: int = 100) -> Path | None:
    """Assemble PNG frames into an animated GIF (evenly thinned to max_frames; the last frame held longer)."""
    if not frames:
        return None
    if len(frames) > max_frames:
        idx = np.linspace(0, len(frames) - 1, max_frames).round().astype(int)
        frames = [frames[i] for i in sorted(set(idx))]
    images = []
    for f in frames:
        with Image.open(f) as im:
            images.append(im.convert("P", palette=Image.ADAPTIVE) if im.mode == "RGB" else im.convert("L"))
    durations = [duration_ms] * (len(images) - 1) + [max(duration_ms, 1500)]
    path = Path(path)
    tmp = path.with_suffix(".tmp.gif")
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=durations, loop=0)
    tmp.replace(path)
    return path
