"""Encoders E: x -> z for learned approximate inference (an encoder for a trained G, BiGAN / ALI).

mlp-e   Flatten -> [Linear -> LeakyReLU 0.2] per `model.e_hidden` -> Linear(z_dim): for the 2014 MLP generator.
conv-e  Radford et al.'s discriminator body (Conv 4x4 stride 2 + BN + LeakyReLU 0.2 down to about 4x4) ->
        Linear(z_dim): for the convolutional generators.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register
from .dcgan import DCGANDiscriminator, dcgan_init_


class MLPEncoder(nn.Module):
    """x (B, C, H, W) -> z (B, z_dim)."""

    def __init__(self, in_shape, hidden: list[int], z_dim: int):
        super().__init__()
        dims, layers = [math.prod(in_shape), *hidden], [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(dims[-1], z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class ConvEncoder(nn.Module):
    """x (B, C, H, W) -> z (B, z_dim) through the DCGAN discriminator's convolutions."""

    def __init__(self, in_shape, z_dim: int, width: int = 64):
        super().__init__()
        d = DCGANDiscriminator(in_shape, ndf=width)
        self.body = d.body
        self.out = nn.Linear(d.head.in_features, z_dim)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


@register("net", "mlp-e")
def _mlp_e(cfg, shape, data=None):
    return MLPEncoder(shape, list(cfg.model.e_hidden), cfg.model.z_dim)


@register("net", "conv-e")
def _conv_e(cfg, shape, data=None):
    return ConvEncoder(shape, cfg.model.z_dim, cfg.model.width_e or 64)
