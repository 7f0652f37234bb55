"""Latent interpolation grids: rows walk from one z to another, linearly or along the sphere (slerp)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import to_uint8
from .grid import save_grid


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of a and b (B, D) at fractions t (T,) -> (B, T, D)."""
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1).clamp(-1 + 1e-7, 1 - 1e-7)).unsqueeze(1)  # (B, 1)
    so = torch.sin(omega)
    t = t.view(1, -1)  # (1, T)
    wa, wb = torch.sin((1 - t) * omega) / so, torch.sin(t * omega) / so  # (B, T)
    return wa.unsqueeze(2) * a.unsqueeze(1) + wb.unsqueeze(2) * b.unsqueeze(1)


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.view(1, -1, 1)
    return (1 - t) * a.unsqueeze(1) + t * b.unsqueeze(1)


@torch.no_grad()
def interpolation_grid(recipe, path: Path, rows: int = 8, steps: int = 10, mode: str = "slerp", seed: int = 0,
                       per_class: bool = False) -> Path:
    """rows x steps images; for conditional models with per_class, row r keeps class r along its walk."""
    g = torch.Generator().manual_seed(seed)
    if per_class and recipe.conditional:
        rows = recipe.num_classes
    a, b = recipe.sample_z(rows, generator=g), recipe.sample_z(rows, generator=g)
    t = torch.linspace(0, 1, steps)
    z = (slerp if mode == "slerp" else lerp)(a, b, t).reshape(rows * steps, -1)
    labels = None
    if recipe.conditional:
        labels = torch.arange(rows).repeat_interleave(steps) % recipe.num_classes
    x = recipe.generate(z, labels)
    return save_grid(to_uint8(x, recipe.cfg.data.range), path, nrow=steps)
