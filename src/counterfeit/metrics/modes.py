"""Mode collapse, measured: classes covered by a classifier, and modes captured on the 2D toy mixtures."""

from __future__ import annotations

import torch


def class_coverage(logits: torch.Tensor, num_classes: int, min_share: float | None = None) -> dict:
    """Predicted-class histogram of generated samples. A class counts as covered when it receives at least
    `min_share` of the samples (default: a fifth of the uniform share, 1/(5K))."""
    pred = logits.argmax(1)
    share = torch.bincount(pred, minlength=num_classes).double() / len(pred)
    thr = min_share if min_share is not None else 1.0 / (5 * num_classes)
    return {"classes_covered": int((share >= thr).sum()), "num_classes": num_classes,
            "largest_class_share": float(share.max()), "class_shares": [round(float(s), 4) for s in share],
            "min_share": thr}


def nearest_mode(samples: torch.Tensor, modes: torch.Tensor, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sample's nearest mode (N,) and whether it is high quality, within 3 std of that mode (N,) bool."""
    dist, idx = torch.cdist(samples.double(), modes.double()).min(1)  # (N, K) distances -> (N,)
    return idx, dist <= 3 * std


def toy_modes(samples: torch.Tensor, modes: torch.Tensor, std: float, min_count: int | None = None) -> dict:
    """VEEGAN / PacGAN protocol: a sample is high quality when within 3 std of its nearest mode, and a mode is
    captured when at least `min_count` high-quality samples lie nearest to it. Default min_count:
    max(1, N // (50 K)), a fiftieth of what each mode would get if samples split evenly."""
    idx, good = nearest_mode(samples, modes, std)
    per_mode = torch.bincount(idx[good], minlength=len(modes))
    need = min_count if min_count is not None else max(1, len(samples) // (50 * len(modes)))
    return {"modes_captured": int((per_mode >= need).sum()), "num_modes": len(modes),
            "high_quality": float(good.double().mean()), "min_count": need, "n": len(samples),
            "per_mode": per_mode.tolist()}  # high-quality samples on each mode, in the mixture's order
