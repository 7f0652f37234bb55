"""Parzen-window log-likelihood, the 2014 paper's Table 1 protocol.

A Gaussian kernel density with isotropic width sigma is fitted to n generated samples mu_j; a test point x gets
    log p(x) = logsumexp_j(-|x - mu_j|^2 / (2 sigma^2)) - log n - d log(sigma sqrt(2 pi)).
sigma is chosen from logspace(-1, 0, 10) by mean log-likelihood on validation points; the score is the mean
over test points with its standard error. Squared distances come from one float64 matmul per chunk,
|x|^2 + |mu|^2 - 2 x.mu, and every sigma reuses them, so 10k x 10k x 784 takes seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

PAPER_SIGMAS = np.logspace(-1, 0, 10)


def flat_pixels(x, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Images (N, ...) as rows (N, D) of pixels in [0, 1]: uint8 divided by 255, floats taken as they are."""
    t = torch.as_tensor(x)
    t = t.to(dtype) / 255.0 if t.dtype == torch.uint8 else t.to(dtype)
    return t.reshape(t.shape[0], -1)


def parzen_log_likelihoods(samples, points, sigmas, chunk: int = 1000) -> torch.Tensor:
    """Per-point log-likelihood (float64) under a Parzen window on `samples`: shape (len(sigmas), n_points).

    uint8 inputs are scaled to [0, 1]; float inputs are used as given.
    """
    mu = flat_pixels(samples)  # (n, d)
    x = flat_pixels(points)  # (m, d)
    n, d = mu.shape
    assert x.shape[1] == d, f"samples have {d} dims, points {x.shape[1]}"
    sig = torch.as_tensor(np.asarray(sigmas, dtype=np.float64)).reshape(-1, 1, 1)  # (S, 1, 1)
    mu_sq = (mu * mu).sum(1)  # (n,)
    out = []
    for i in range(0, x.shape[0], chunk):
        xc = x[i : i + chunk]  # (c, d)
        d2 = ((xc * xc).sum(1, keepdim=True) + mu_sq - 2.0 * xc @ mu.T).clamp_min_(0.0)  # (c, n)
        lse = torch.logsumexp(-d2.unsqueeze(0) / (2.0 * sig**2), dim=2)  # (S, c)
        out.append(lse)
    ll = torch.cat(out, 1) - math.log(n) - d * torch.log(sig.reshape(-1, 1) * math.sqrt(2.0 * math.pi))
    return ll  # (S, m)


@dataclass
class ParzenResult:
    mean: float
    se: float
    sigma: float
    sigmas: list
    valid_means: list
    n_samples: int
    n_valid: int
    n_test: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def choose_sigma(samples, valid, sigmas=PAPER_SIGMAS) -> tuple[float, list]:
    ll = parzen_log_likelihoods(samples, valid, sigmas).mean(1)  # (S,)
    return float(np.asarray(sigmas)[int(ll.argmax())]), ll.tolist()


def parzen_evaluate(samples, valid, test, sigmas=PAPER_SIGMAS) -> ParzenResult:
    """Choose sigma on `valid`, then report mean and standard error of test log-likelihood (nats)."""
    sigma, valid_means = choose_sigma(samples, valid, sigmas)
    ll = parzen_log_likelihoods(samples, test, [sigma])[0]  # (m,)
    se = float(ll.std(unbiased=False)) / math.sqrt(ll.numel())  # numpy's std, as the reference script
    return ParzenResult(float(ll.mean()), se, sigma, [float(s) for s in sigmas], valid_means,
                        len(samples), len(valid), len(test))
