"""Memorisation check: how close each sample lies to its nearest training image, against unseen real images.

A Parzen window rewards samples that sit on real images, so a G that copied its training set would win the 2014
paper's Table 1 (10,000 real training digits score about 241 nats there, above the paper's 225) without having
learned to generalise. This check puts the number beside the score:
  d(s)  = min over training images t of |s - t|_2, pixels in [0, 1], for every sample s;
  d(x)  = the same for every test image x (real images the run never saw: how far apart real digits are);
  copies = the share of samples with d(s) below the 1st percentile of d(x), i.e. closer to a training image than
           99% of unseen real images are. A G that generalises has about 0.01 here; a G that copies has 1.0;
  ratio  = median d(s) / median d(x): below 1, samples hug the training set more tightly than real data does.
Distances come from one float32 matmul per chunk, |s|^2 + |t|^2 - 2 s.t, so 10k x 50k x 784 takes seconds.
"""

from __future__ import annotations

import torch

from .parzen import flat_pixels

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75)


def nearest_distances(x: torch.Tensor, ref: torch.Tensor, chunk: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of x (N, ...) its L2 distance to the nearest row of ref (M, ...) and that row's index: (N,), (N,)."""
    a, r = flat_pixels(x, torch.float32), flat_pixels(ref, torch.float32)  # (N, D), (M, D) in [0, 1]
    if a.shape[1] != r.shape[1]:
        raise ValueError(f"images of {a.shape[1]} values against reference images of {r.shape[1]}")
    r_sq = (r * r).sum(1)  # (M,)
    dist, idx = [], []
    for i in range(0, len(a), chunk):
        c = a[i : i + chunk]  # (c, D)
        d2 = (c * c).sum(1, keepdim=True) + r_sq - 2.0 * c @ r.T  # (c, M)
        m, j = d2.min(1)
        dist.append(m.clamp_min_(0.0).sqrt_())
        idx.append(j)
    return torch.cat(dist), torch.cat(idx)


def memorisation(samples: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> dict:
    """The check above: samples, train and test images (N, C, H, W), uint8 or floats in [0, 1]."""
    ds, _ = nearest_distances(samples, train)
    dx, _ = nearest_distances(test, train)
    q = torch.tensor(QUANTILES)
    qs, qx = torch.quantile(ds, q), torch.quantile(dx, q)
    return {"copies": float((ds < qx[0]).float().mean()), "ratio": float(qs[3] / qx[3]),
            "samples_quantiles": {f"{p:g}": round(float(v), 4) for p, v in zip(QUANTILES, qs)},
            "test_quantiles": {f"{p:g}": round(float(v), 4) for p, v in zip(QUANTILES, qx)},
            "samples_median": float(qs[3]), "test_median": float(qx[3]), "test_p01": float(qx[0]),
            "n_samples": len(ds), "n_train": len(train), "n_test": len(dx),
            "distance": "L2 over pixels in [0, 1]"}
