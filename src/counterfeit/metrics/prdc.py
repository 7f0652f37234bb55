"""Improved precision and recall (Kynkäänniemi et al. 2019) and density and coverage (Naeem et al. 2020).

Each real (generated) feature gets a ball whose radius is the distance to its k-th nearest real (generated)
neighbour. precision: share of generated points inside some real ball. recall: share of real points inside some
generated ball. density: mean number of real balls holding each generated point, / k. coverage: share of real
balls that hold at least one generated point.
"""

from __future__ import annotations

import torch

from .base import FeatureStore


def _kth_nn_radius(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    out = []
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)  # (c, N)
        out.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(out)


def _ball_counts(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048):
    """For each point: how many balls hold it; for each ball: whether any point falls in it."""
    counts = torch.zeros(len(points), dtype=torch.long)
    hit = torch.zeros(len(centres), dtype=torch.bool)
    for i in range(0, len(points), chunk):
        inside = torch.cdist(points[i : i + chunk], centres) <= radii  # (c, M)
        counts[i : i + chunk] = inside.sum(1)
        hit |= inside.any(0)
    return counts, hit


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> dict:
    real, fake = real.double(), fake.double()
    r_real, r_fake = _kth_nn_radius(real, k), _kth_nn_radius(fake, k)
    counts_fake_in_real, real_covered = _ball_counts(fake, real, r_real)
    counts_real_in_fake, _ = _ball_counts(real, fake, r_fake)
    return {
        "precision": float((counts_fake_in_real > 0).double().mean()),
        "recall": float((counts_real_in_fake > 0).double().mean()),
        "density": float(counts_fake_in_real.double().mean() / k),
        "coverage": float(real_covered.double().mean()),
        "k": k, "n_real": len(real), "n_fake": len(fake),
    }


class PRDC(FeatureStore):
    name, higher_is_better = "prdc", True

    def __init__(self, k: int = 3):
        super().__init__()
        self.k = k

    def compute(self) -> dict:
        real, fake = self.features()
        return prdc(real, fake, self.k)
