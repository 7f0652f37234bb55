"""Toy distributions: the paper's 1D Gaussian and the 2D mixtures of the PacGAN / VEEGAN benchmarks."""

from __future__ import annotations

import math

import torch

GAUSS1D = (4.0, 0.5)  # mean, std of the 1D data in Figure 1


def gaussian_1d(n: int, mean: float = GAUSS1D[0], std: float = GAUSS1D[1], generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 1) samples of N(mean, std^2): p_data of the paper's Figure 1."""
    return mean + std * torch.randn(n, 1, generator=generator)


def ring_modes(n_modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """(n_modes, 2) centres equally spaced on a circle."""
    a = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return torch.stack([radius * torch.cos(a), radius * torch.sin(a)], 1).float()


def grid_modes(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """(side^2, 2) centres at {-4, -2, 0, 2, 4}^2 for the default 5x5 grid."""
    ticks = (torch.arange(side, dtype=torch.float32) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)


TOYS = {
    "ring8": (lambda: ring_modes(8, 1.0), 0.01),  # 8 Gaussians on the unit circle, std 0.01
    "grid25": (lambda: grid_modes(5, 2.0), 0.05),  # 5x5 grid, std 0.05
}


def toy_modes(name: str) -> tuple[torch.Tensor, float]:
    make, std = TOYS[name]
    return make(), std


def sample_mixture(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 2) samples from an equal-weight mixture of isotropic Gaussians."""
    modes, std = toy_modes(name)
    idx = torch.randint(len(modes), (n,), generator=generator)
    return modes[idx] + std * torch.randn(n, 2, generator=generator)
