"""Parzen-window log-likelihood, the 2014 paper's Table 1 protocol.

A Gaussian kernel density with isotropic width sigma is fitted to n generated samples mu_j; a test point x gets
    log p(x) = logsumexp_j(-|x - mu_j|^2 / (2 sigma^2)) - log n - d log(sigma sqrt(2 pi)).
sigma is chosen from logspace(-1, 0, 10) by mean log-likelihood on validation points; the score is the mean
over test points with its standard error. Squared distances come from one float64 matmul per chunk,
|x|^2 + |mu|^2 - 2 x.mu, and every sigma reuses them (the speed against one logsumexp over all sigmas is in
bench/results/parzen-speed.json).
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


def parzen_log_likelihoods(samples, points, sigmas, chunk: int = 1000, rows: int = 64) -> torch.Tensor:
    """Per-point log-likelihood (float64) under a Parzen window on `samples`: shape (len(sigmas), n_points).

    uint8 inputs are scaled to [0, 1]; float inputs are used as given. Each point's squared distances are shifted
    by their minimum once, so that every sigma needs one multiply, exp and sum per distance (logsumexp adds a max
    pass and (sigmas, chunk, n) temporaries); the exp work runs on `rows` points at a time, whose distances stay in
    cache across the sigmas.
    """
    mu = flat_pixels(samples)  # (n, d)
    x = flat_pixels(points)  # (m, d)
    n, d = mu.shape
    assert x.shape[1] == d, f"samples have {d} dims, points {x.shape[1]}"
    sig = torch.as_tensor(np.asarray(sigmas, dtype=np.float64)).reshape(-1)  # (S,)
    scales = (-0.5 / sig**2).tolist()
    mu_sq = (mu * mu).sum(1)  # (n,)
    lse = torch.empty(len(scales), x.shape[0], dtype=torch.float64)  # (S, m)
    buf = torch.empty(min(rows, x.shape[0]), n, dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):
        xc = x[i : i + chunk]  # (c, d)
        d2 = torch.addmm(mu_sq, xc, mu.T, alpha=-2.0).add_((xc * xc).sum(1, keepdim=True)).clamp_min_(0.0)
        nearest = d2.amin(1, keepdim=True)  # (c, 1)
        d2.sub_(nearest)
        for j in range(0, len(xc), rows):
            r = d2[j : j + rows]
            b = buf[: len(r)]
            for k, a in enumerate(scales):  # logsumexp_j(a d2_j) = a min d2 + log sum_j exp(a (d2_j - min d2))
                torch.mul(r, a, out=b).exp_()
                lse[k, i + j : i + j + len(r)] = b.sum(1).log_() + a * nearest[j : j + rows, 0]
    return lse - math.log(n) - d * torch.log(sig.reshape(-1, 1) * math.sqrt(2.0 * math.pi))  # (S, m)


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
