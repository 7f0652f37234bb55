"""Fréchet distance between Gaussians fitted to real and generated features (Heusel et al. 2017).

    FID = |mu_r - mu_g|^2 + tr(S_r + S_g - 2 (S_r S_g)^(1/2))

Streams: each side keeps n, sum(x) and sum(x x^T) in float64. The trace of the matrix square root is taken
stably as sum(sqrt(eig(A))) with A = S_r^(1/2) S_g S_r^(1/2), which is symmetric PSD (same spectrum as S_r S_g),
so no complex parts or scipy.linalg.sqrtm iterations are needed.
"""

from __future__ import annotations

import torch

from .base import Metric


def _sqrt_psd(s: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance(mu1, s1, mu2, s2) -> float:
    mu1, s1, mu2, s2 = (torch.as_tensor(t, dtype=torch.float64) for t in (mu1, s1, mu2, s2))
    r = _sqrt_psd(s1)
    a = r @ s2 @ r
    a = (a + a.T) / 2
    tr_sqrt = torch.linalg.eigvalsh(a).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * tr_sqrt)


class GaussianStats:
    """Running n, sum, sum of outer products (float64) -> mean and unbiased covariance."""

    def __init__(self, dim: int | None = None):
        self.n, self.s, self.ss = 0, None, None
        if dim:
            self._alloc(dim)

    def _alloc(self, d):
        self.s = torch.zeros(d, dtype=torch.float64)
        self.ss = torch.zeros(d, d, dtype=torch.float64)

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().to("cpu", torch.float64).flatten(1)
        if self.s is None:
            self._alloc(x.shape[1])
        self.n += x.shape[0]
        self.s += x.sum(0)
        self.ss += x.T @ x

    def merge(self, other: "GaussianStats") -> None:
        if other.s is None:
            return
        if self.s is None:
            self._alloc(other.s.shape[0])
        self.n += other.n
        self.s += other.s
        self.ss += other.ss

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.n >= 2, "need at least 2 samples"
        mu = self.s / self.n
        cov = (self.ss - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return mu, cov


class FID(Metric):
    name, higher_is_better = "fid", False

    def __init__(self):
        self.reset()

    def reset(self):
        self.real, self.fake = GaussianStats(), GaussianStats()

    def update(self, feats: torch.Tensor, real: bool) -> None:
        (self.real if real else self.fake).update(feats)

    def merge(self, other):
        self.real.merge(other.real)
        self.fake.merge(other.fake)

    def compute(self) -> dict:
        mu1, s1 = self.real.mean_cov()
        mu2, s2 = self.fake.mean_cov()
        return {"fid": frechet_distance(mu1, s1, mu2, s2), "n_real": self.real.n, "n_fake": self.fake.n}
