"""The recipe contract.

A recipe builds its networks and optimizers and turns a batch into named loss terms. The loop sums the terms,
runs backward, steps the optimizers and logs each term as loss/D/<name> or loss/G/<name>. A recipe holds no
loop, no argparse and never calls .step().
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import nets as _nets  # noqa: F401  (registers the networks)
from .. import registry
from ..errors import UserError


@dataclass
class Losses:
    terms: dict[str, torch.Tensor]  # named scalar terms; the loop minimises their sum
    stats: dict[str, float] = field(default_factory=dict)  # things to log, e.g. mean D(x), D(G(z))


class Recipe:
    n_dis: int = 1  # D updates per G update (k of Algorithm 1)
    supports_joint: bool = False  # can compute D's and G's losses from one forward pass

    def __init__(self, cfg, shape: tuple[int, int, int], data=None):
        self.cfg = cfg
        self.shape = shape
        self.n_dis = cfg.train.n_dis
        self.G: nn.Module = registry.get("net", cfg.model.generator)(cfg, shape, data)
        self.D: nn.Module = registry.get("net", cfg.model.discriminator)(cfg, shape, data)

    # ---------------------------------------------------------------- noise and sampling
    def sample_z(self, n: int, device="cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, z_dim) noise; 'uniform' is U[-sqrt(3), sqrt(3)] (unit variance), as in the 2014 code."""
        z_dim = self.cfg.model.z_dim
        if self.cfg.model.noise == "uniform":
            u = torch.rand(n, z_dim, generator=generator, device=device)
            return (u * 2.0 - 1.0) * math.sqrt(3.0)
        return torch.randn(n, z_dim, generator=generator, device=device)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, G: nn.Module | None = None) -> torch.Tensor:
        return (G or self.G)(z)

    # ---------------------------------------------------------------- optimizers
    def optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        o = self.cfg.optim
        return make_optimizer(o, self.G.parameters(), o.lr_g), make_optimizer(o, self.D.parameters(), o.lr_d)

    # ---------------------------------------------------------------- losses
    def d_losses(self, real: torch.Tensor, labels: torch.Tensor | None) -> Losses:
        raise NotImplementedError

    def g_losses(self, n: int, labels: torch.Tensor | None) -> Losses:
        raise NotImplementedError

    def joint_losses(self, real: torch.Tensor, labels: torch.Tensor | None) -> tuple[Losses, Losses]:
        """D's and G's losses from one minibatch and one forward pass (simultaneous update)."""
        raise NotImplementedError

    def after_d_step(self) -> None:
        """Hook for projections after D's update (e.g. WGAN weight clipping)."""


def make_optimizer(o, params, lr: float) -> torch.optim.Optimizer:
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=o.momentum)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(o.betas))
    if o.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise UserError(f"unknown optimizer '{o.name}' (known: sgd, adam, rmsprop)")


def build_recipe(cfg, shape, data=None) -> Recipe:
    from . import gan  # noqa: F401  (registers recipes)

    return registry.get("recipe", cfg.model.recipe)(cfg, shape, data)
