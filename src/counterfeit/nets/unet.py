"""The U-Net generator of Pix2Pix (Isola et al. 2017): an encoder-decoder with skip connections.

depth levels, each halving the image: 4x4 stride-2 convolutions down (LeakyReLU 0.2 before all but the first,
normalisation on all but the first and the innermost), 4x4 stride-2 transposed convolutions up (ReLU before each,
normalisation after all but the outermost, tanh out), the decoder's input at every level but the innermost the
concatenation [encoder features, decoder features]. Widths ngf, 2ngf, 4ngf, then 8ngf. Dropout 0.5 sits in the
decoder blocks just outside the innermost one: depth - 5 of them (three at 256x256 with 8 levels), so a net of
5 levels or fewer has none, and warns.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import UserError
from .layers import Dropout, norm_layer


def unet_sizes(depth: int) -> str:
    return ", ".join(str(2**depth * k) for k in (1, 2, 3, 4)) + ", ..."


class UNetGenerator(nn.Module):
    """x (B, in_ch, H, W) -> (B, out_ch, H, W) in [-1, 1]; H and W divisible by 2^depth (non-square is fine)."""

    def __init__(self, in_ch: int, out_ch: int, depth: int, in_shape: tuple[int, int], ngf: int = 64,
                 norm: str = "batch", dropout: bool = True):
        super().__init__()
        h, w = in_shape
        if depth < 2 or h % 2**depth or w % 2**depth:
            raise UserError(f"a U-Net of {depth} levels needs sides divisible by {2**depth} ({unet_sizes(depth)}), "
                            f"not {h}x{w}")
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        bias = norm == "instance"  # a conv before BatchNorm needs no bias (BN's shift is one)
        self.n_dropout = max(0, depth - 5) if dropout else 0
        if dropout and self.n_dropout == 0:
            warnings.warn(f"a U-Net of {depth} levels has no decoder block with dropout (the authors' nets put it in "
                          "the depth - 5 blocks outside the innermost); G gets no noise from dropout", stacklevel=2)
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for i in range(depth):
            cin = in_ch if i == 0 else widths[i - 1]
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2, True)]
            layers.append(nn.Conv2d(cin, widths[i], 4, 2, 1, bias=bias))  # as the authors: no bias with BatchNorm
            if 0 < i < depth - 1:
                layers.append(norm_layer(norm, widths[i]))
            self.downs.append(nn.Sequential(*layers))
        for i in range(depth):
            cin = widths[i] * (1 if i == depth - 1 else 2)  # the innermost level has no skip to concatenate
            if i == 0:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(cin, out_ch, 4, 2, 1), nn.Tanh()]
            else:
                layers = [nn.ReLU(True), nn.ConvTranspose2d(cin, widths[i - 1], 4, 2, 1, bias=bias),
                          norm_layer(norm, widths[i - 1])]
                if depth - 1 - self.n_dropout <= i < depth - 1:
                    layers.append(Dropout(0.5))
            self.ups.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)  # level i: (B, widths[i], H / 2^(i+1), W / 2^(i+1))
        h = self.ups[-1](skips[-1])
        for i in reversed(range(len(self.ups) - 1)):
            h = self.ups[i](torch.cat([skips[i], h], 1))
        return h  # (B, out_ch, H, W)
