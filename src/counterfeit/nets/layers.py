"""Building blocks shared by the networks."""

from __future__ import annotations

import torch
from torch import nn


class Maxout(nn.Module):
    """Maxout (Goodfellow et al. 2013): h_i = max_j (x W_ij + b_ij), j over `pieces` linear pieces.

    The affine map produces (B, units * pieces); pieces of one unit are adjacent, as in pylearn2.
    """

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)  # (B, units * pieces)
        return z.view(x.shape[0], self.units, self.pieces).amax(dim=-1)  # (B, units)


def init_uniform_(module: nn.Module, irange: float) -> None:
    """pylearn2's `irange`: every weight ~ U[-irange, irange], every bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -irange, irange)
            nn.init.zeros_(m.bias)


def norm_layer(kind: str, channels: int) -> nn.Module:
    """Pix2Pix / CycleGAN normalisation: "instance" (no affine, no running stats, as the authors' code) or "batch"."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm '{kind}' (instance, batch)")
