"""The PatchGAN discriminator of Pix2Pix / CycleGAN: a conv net whose output is a grid of logits, one per patch.

n_layers 4x4 stride-2 convolutions (widths ndf, 2ndf, ... up to 8ndf; LeakyReLU 0.2, normalisation on all but the
first), one 4x4 stride-1 convolution and a 4x4 stride-1 convolution to one channel. Each output logit sees a
receptive field of 16, 34, 70, ... pixels for n_layers 1, 2, 3 (`receptive_field`, computed from the layers).
Pix2Pix's D is conditional: it sees the input and the output concatenated along channels (in_ch = both).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import norm_layer


class PatchDiscriminator(nn.Module):
    """x (B, in_ch, H, W) -> logits (B, 1, H', W'): large = real, one per overlapping patch."""

    def __init__(self, in_ch: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.Conv2d(in_ch, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = ndf
        for n in range(1, n_layers + 1):
            nxt = ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ch, nxt, 4, stride, 1, bias=bias), norm_layer(norm, nxt), nn.LeakyReLU(0.2, True)]
            ch = nxt
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def receptive_field(self) -> int:
        """Side of the input patch one output logit depends on: walk the convolutions back from one pixel."""
        r = 1
        for m in reversed([m for m in self.net if isinstance(m, nn.Conv2d)]):
            r = (r - 1) * m.stride[0] + m.kernel_size[0]
        return r

    def output_grid(self, h: int, w: int) -> tuple[int, int]:
        for m in self.net:
            if isinstance(m, nn.Conv2d):
                k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
                h, w = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        return h, w
