"""BiGAN's networks (Donahue et al. 2017): G(z), an encoder E(x) and a discriminator D(x, z) of joint pairs.

The MLPs follow the authors' permutation-invariant MNIST model (jeffdonahue/bigan, `train_mnist.sh`): 1024-unit
layers without biases, BatchNorm without scale or shift, N(0, 0.02) weights; G re-injects z into its second layer
and D joins z at its second layer the same way (a linear map of z added to the pre-activation); E's output
2 sigmoid(a) - 1 lies in z's (-1, 1); D's last layer starts at zero. The convolutional ones put Radford et al.'s
nets in the same roles (D's x-path is the DCGAN discriminator body, z joins through a linear map before the
head).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register
from .dcgan import DCGANDiscriminator, dcgan_init_


def _bn(n: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(n, affine=False)


class JoinedLayer(nn.Module):
    """h (B, a) and z (B, z_dim) -> W h + V z (B, b), no bias: the authors' way of feeding z into a hidden layer."""

    def __init__(self, a: int, b: int, z_dim: int):
        super().__init__()
        self.h, self.z = nn.Linear(a, b, bias=False), nn.Linear(z_dim, b, bias=False)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.h(h) + self.z(z)


class BiGANGenerator(nn.Module):
    """z -> FC, BN, ReLU -> FC (+ FC of z), BN, ReLU -> FC, sigmoid: images in [0, 1]."""

    def __init__(self, z_dim: int, out_shape, width: int = 1024):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.fc1, self.bn1 = nn.Linear(z_dim, width, bias=False), _bn(width)
        self.fc2, self.bn2 = JoinedLayer(width, width, z_dim), _bn(width)
        self.out = nn.Linear(width, math.prod(out_shape), bias=False)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.fc1(z)))
        h = torch.relu(self.bn2(self.fc2(h, z)))
        return torch.sigmoid(self.out(h)).view(len(z), *self.out_shape)


class BiGANEncoder(nn.Module):
    """x -> FC, LReLU 0.2 -> FC, BN, LReLU -> FC -> 2 sigmoid(.) - 1: z in (-1, 1)."""

    def __init__(self, in_shape, z_dim: int, width: int = 1024):
        super().__init__()
        self.fc1 = nn.Linear(math.prod(in_shape), width, bias=False)
        self.fc2, self.bn2 = nn.Linear(width, width, bias=False), _bn(width)
        self.out = nn.Linear(width, z_dim, bias=False)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.leaky_relu(self.fc1(x.flatten(1)), 0.2)
        h = nn.functional.leaky_relu(self.bn2(self.fc2(h)), 0.2)
        return 2.0 * torch.sigmoid(self.out(h)) - 1.0


class BiGANDiscriminator(nn.Module):
    """(x, z) -> FC(x), LReLU -> FC (+ FC of z), BN, LReLU -> FC (zero-initialised) -> one logit (B,)."""

    def __init__(self, in_shape, z_dim: int, width: int = 1024):
        super().__init__()
        self.fc1 = nn.Linear(math.prod(in_shape), width, bias=False)
        self.fc2, self.bn2 = JoinedLayer(width, width, z_dim), _bn(width)
        self.out = nn.Linear(width, 1, bias=False)
        dcgan_init_(self)
        nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = nn.functional.leaky_relu(self.fc1(x.flatten(1)), 0.2)
        h = nn.functional.leaky_relu(self.bn2(self.fc2(h, z)), 0.2)
        return self.out(h).squeeze(1)


class ConvJointDiscriminator(nn.Module):
    """(x, z) -> the DCGAN discriminator body on x, a linear map of z added before a 512-unit layer -> logit."""

    def __init__(self, in_shape, z_dim: int, width: int = 64, hidden: int = 512):
        super().__init__()
        d = DCGANDiscriminator(in_shape, ndf=width)
        self.body = d.body
        self.joint = JoinedLayer(d.head.in_features, hidden, z_dim)
        self.out = nn.Linear(hidden, 1)
        dcgan_init_(self)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = nn.functional.leaky_relu(self.joint(self.body(x), z), 0.2)
        return self.out(h).squeeze(1)


@register("net", "bigan-mlp-g")
def _g(cfg, shape, data=None):
    return BiGANGenerator(cfg.model.z_dim, shape, cfg.model.width_g or 1024)


@register("net", "bigan-mlp-e")
def _e(cfg, shape, data=None):
    return BiGANEncoder(shape, cfg.model.z_dim, cfg.model.width_e or 1024)


@register("net", "bigan-mlp-d")
def _d(cfg, shape, data=None):
    return BiGANDiscriminator(shape, cfg.model.z_dim, cfg.model.width_d or 1024)


@register("net", "bigan-conv-d")
def _conv_d(cfg, shape, data=None):
    return ConvJointDiscriminator(shape, cfg.model.z_dim, cfg.model.width_d or 64)
