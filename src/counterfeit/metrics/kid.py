"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3,
averaged over random subsets, reported with its standard deviation across subsets."""

from __future__ import annotations

import torch

from .base import FeatureStore


def mmd2_unbiased_poly(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = x.shape[0], y.shape[0]
    return ((kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
            - 2 * kxy.mean())


class KID(FeatureStore):
    name, higher_is_better = "kid", False

    def __init__(self, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
        super().__init__()
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed

    def compute(self) -> dict:
        real, fake = self.features()
        m = min(self.subset_size, len(real), len(fake))
        assert m >= 2, "KID needs at least 2 real and 2 generated samples"
        g = torch.Generator().manual_seed(self.seed)
        vals = torch.stack([mmd2_unbiased_poly(real[torch.randperm(len(real), generator=g)[:m]],
                                               fake[torch.randperm(len(fake), generator=g)[:m]])
                            for _ in range(self.subsets)])
        return {"kid": float(vals.mean()), "kid_std": float(vals.std()) if len(vals) > 1 else 0.0, "subsets": self.subsets, "subset_size": m,
                "n_real": len(real), "n_fake": len(fake)}
