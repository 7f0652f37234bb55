"""Building blocks shared by the networks."""

from __future__ import annotations

import torch
from torch import nn


class Maxout(nn.Module):
    """Maxout (Goodfellow et al. 2013): h_i = max_j (x W_ij + b_ij), j over `pieces` linear pieces.

    The affine map produces (B, units * pieces); pieces of one unit are adjacent, as in pylearn2. The max is taken
    with its indices (`max(dim)`), whose backward scatters the gradient to the winning piece; amax's backward builds
    an equality mask, counts and divides, and is slower (bench/results/speed-gan2014-maxout.json). The gradient is
    the same unless two pieces tie exactly (amax splits it, max gives it to one).
    """

    def __init__(self, in_features: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(x)  # (B, units * pieces)
        return z.view(x.shape[0], self.units, self.pieces).max(dim=-1).values  # (B, units)


class Dropout(nn.Module):
    """Inverted dropout, as nn.Dropout (zero each input with probability p, scale the rest by 1 / (1 - p)), with the
    mask drawn as fp32 uniforms compared with p: torch's CPU bernoulli_ is several times slower for the same mask
    (bench/speed.py records it). Under bf16 autocast the uniforms stay fp32, so p is exact; the mask is cast to the
    activations' dtype."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        # fp32 uniforms from torch's generator, in x's memory format (a channels_last x with a contiguous mask
        # sends the multiply and its backward down a slow strided path)
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ToContiguous(nn.Module):
    """NCHW memory order from here on (a no-op on NCHW tensors). Placed before the last elementwise layers that feed
    a Flatten: Flatten copies a channels_last tensor to NCHW, so its gradient comes back NCHW, and an elementwise
    backward with mismatched memory orders takes a slow strided path (bench/results/dropout-ab.json). A custom
    backward that hands the gradient back in channels_last was no better, so it stays this simple."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous()


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
