"""Small MLPs for the 1D and 2D toy problems (the paper's Figure 1; ring and grid mixtures)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": lambda: nn.LeakyReLU(0.2)}


def mlp(n_in: int, hidden: list[int], n_out: int, act: str, batchnorm: bool = False) -> nn.Sequential:
    dims, layers = [n_in, *hidden], []
    for a, b in zip(dims[:-1], dims[1:]):
        if batchnorm:  # PacGAN's 2D generator: linear (no bias) -> BN -> ReLU
            layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), ACTIVATIONS[act]()]
        else:
            layers += [nn.Linear(a, b), ACTIVATIONS[act]()]
    return nn.Sequential(*layers, nn.Linear(dims[-1], n_out))


class ToyGenerator(nn.Module):
    """z (B, z_dim) -> x (B, D), linear output."""

    def __init__(self, z_dim: int, hidden: list[int], out_dim: int, act: str = "relu", batchnorm: bool = False,
                 out_scale: float = 1.0):
        super().__init__()
        self.net = mlp(z_dim, hidden, out_dim, act, batchnorm)
        # the data's spread: G starts at the data's scale instead of near 0. A buffer, so a checkpoint carries it
        # (an automatic scale is measured on the training data, which a sampler loading the run does not have)
        self.register_buffer("out_scale", torch.tensor(float(out_scale)))

    def forward(self, z):
        return self.net(z) * self.out_scale


class ToyDiscriminator(nn.Module):
    """x (B, D) -> logit (B,)."""

    def __init__(self, in_dim: int, hidden: list[int], act: str = "relu"):
        super().__init__()
        self.net = mlp(in_dim, hidden, 1, act)

    def forward(self, x):
        return self.net(x.flatten(1)).squeeze(1)


@register("net", "toy-g")
def _toy_g(cfg, shape, data=None):
    scale = cfg.model.g_out_scale
    if scale == 0:  # auto: the data's standard deviation (ring of 8: 0.71; grid of 25: 2.83)
        scale = float(data.x.float().std()) if data is not None else 1.0
    return ToyGenerator(cfg.model.z_dim, list(cfg.model.g_hidden), math.prod(shape), cfg.model.activation,
                        cfg.model.g_batchnorm, scale)


@register("net", "toy-d")
def _toy_d(cfg, shape, data=None):
    return ToyDiscriminator(math.prod(shape), list(cfg.model.d_hidden), cfg.model.activation)


