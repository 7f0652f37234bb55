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


class Dropout(nn.Module):
    """Inverted dropout, as nn.Dropout (zero each input with probability p, scale the rest to keep the mean), with
    the mask drawn 16 bits per element: torch's CPU generator fills 64-bit integers about as fast as it fills
    floats, so one 64-bit draw gives four masks, and a unit is kept when its 16-bit word is at or above
    round(p * 65536). The rate is then p rounded to a multiple of 2^-16 (0.3 -> 0.300003, 0.5 exact) and the kept
    units are scaled by 1 / (1 - that rate), so the layer stays exactly unbiased. Against fp32 uniforms compared with
    p (the version before) the tutorial DCGAN's 9.6M dropout draws per step took 11 ms instead of 31 ms under the
    profiler on 2 cores, and the bf16 step ran 5% faster (12.5% with ToContiguous below; interleaved, in
    bench/results/dropout-ab.json); torch's own bernoulli_ had taken 3.4x as long as the fp32 uniforms. The words fill x's memory order,
    so a channels_last x gets a channels_last mask, and under bf16 autocast the comparison is on integers: the
    rate does not depend on the activations' dtype."""

    BITS = 16

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.threshold = round(p * 2**self.BITS)  # words below it drop: the rate is threshold / 2^16
        self.scale = 2**self.BITS / (2**self.BITS - self.threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), 2**63 - 1)
        words = words.view(torch.int16)[:n]  # uniform over -32768..32767
        if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            b, c, h, w = x.shape
            words = words.view(b, h, w, c).permute(0, 3, 1, 2)  # in x's memory order
        else:
            words = words.view(x.shape)
        keep = words >= self.threshold - 2 ** (self.BITS - 1)
        return x * keep.to(x.dtype).mul_(self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ToContiguous(nn.Module):
    """NCHW memory order from here on (a no-op on NCHW tensors). Placed before the last elementwise layers that feed
    a Flatten: Flatten copies a channels_last tensor to NCHW, so its gradient comes back NCHW, and the LeakyReLU and
    dropout backward of a channels_last input with an NCHW gradient took 4.7 ms per call against 1 ms with matching
    orders (the tutorial D's (512, 128, 7, 7) activations). Interleaved with the plain D the bf16 tutorial step ran
    5% faster (bench/results/dropout-ab.json); handing the gradient back in channels_last (a custom backward)
    measured no better, so it stays this simple."""

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
