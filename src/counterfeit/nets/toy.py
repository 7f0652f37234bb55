"""Small MLPs for the 1D and 2D toy problems (the paper's Figure 1; ring and grid mixtures)."""

from __future__ import annotations

import math

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

    def __init__(self, z_dim: int, hidden: list[int], out_dim: int, act: str = "relu", batchnorm: bool = False):
        super().__init__()
        self.net = mlp(z_dim, hidden, out_dim, act, batchnorm)

    def forward(self, z):
        return self.net(z)


class ToyDiscriminator(nn.Module):
    """x (B, D) -> logit (B,)."""

    def __init__(self, in_dim: int, hidden: list[int], act: str = "relu"):
        super().__init__()
        self.net = mlp(in_dim, hidden, 1, act)

    def forward(self, x):
        return self.net(x.flatten(1)).squeeze(1)


@register("net", "toy-g")
def _toy_g(cfg, shape, data=None):
    return ToyGenerator(cfg.model.z_dim, list(cfg.model.g_hidden), math.prod(shape), cfg.model.activation,
                        cfg.model.g_batchnorm)


@register("net", "toy-d")
def _toy_d(cfg, shape, data=None):
    return ToyDiscriminator(math.prod(shape), list(cfg.model.d_hidden), cfg.model.activation)


