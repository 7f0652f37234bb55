"""Garbage that a sample-quality metric must score below real images: the sanity rows of bench/family.py and the
test that keeps the README's tables to metrics that pass them."""

from __future__ import annotations

import numpy as np
import torch

SANITY = {"noise": "uniform noise in 0..255", "grey": "one constant grey image (128)",
          "one-image": "the first real image repeated", "blur": "the real images blurred (Gaussian, sigma 1.5 px)"}
# which way is better for each score that flat_scores reports
HIGHER_IS_BETTER = {"fid": False, "kid": False, "is": True, "precision": True, "recall": True, "density": True,
                    "coverage": True, "classes": True, "largest_class_share": False}


def garbage(kind: str, real: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """uint8 images (N, C, H, W) of one sanity kind, shaped like the uint8 `real` they stand in for."""
    g = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return torch.randint(0, 256, real.shape, generator=g, dtype=torch.uint8)
    if kind == "grey":
        return torch.full_like(real, 128)
    if kind == "one-image":
        return real[:1].expand_as(real).clone()
    if kind == "blur":
        from scipy.ndimage import gaussian_filter

        a = gaussian_filter(real.numpy().astype(np.float32), sigma=(0, 0, 1.5, 1.5))
        return torch.from_numpy(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    raise ValueError(f"unknown sanity kind {kind!r} (known: {', '.join(SANITY)})")


def worse(metric: str, score: float, real: float) -> bool:
    """True when `score` is strictly worse than the real images' `real` on this metric."""
    return score < real if HIGHER_IS_BETTER[metric] else score > real
