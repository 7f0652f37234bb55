import math

import numpy as np
import torch
from torch.testing import assert_close

from counterfeit.metrics.parzen import PAPER_SIGMAS, parzen_evaluate, parzen_log_likelihoods


def brute_force(samples: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
    """The reference script's formula, one point at a time, in numpy float64."""
    out = []
    d = samples.shape[1]
    for x in points:
        a = -0.5 * (((x[None, :] - samples) / sigma) ** 2).sum(1)
        m = a.max()
        out.append(m + math.log(np.exp(a - m).mean()) - d * math.log(sigma * math.sqrt(2 * math.pi)))
    return np.array(out)


def test_parzen_matches_brute_force_numpy():
    rng = np.random.default_rng(0)
    samples, points = rng.random((300, 20)), rng.random((70, 20))
    want = torch.stack([torch.from_numpy(brute_force(samples, points, s)) for s in PAPER_SIGMAS])
    for chunk, rows in [(32, 64), (32, 5), (1000, 64), (7, 3)]:  # chunks and row blocks that leave remainders
        ll = parzen_log_likelihoods(torch.from_numpy(samples), torch.from_numpy(points), PAPER_SIGMAS, chunk, rows)
        assert_close(ll, want, rtol=1e-9, atol=1e-7)


def test_parzen_on_uint8_images_scales_to_unit_interval(digits):
    s, v, t = digits.x[:200], digits.x[200:300], digits.x[300:400]
    res = parzen_evaluate(s, v, t)
    flat = lambda a: a.reshape(len(a), -1).double().numpy() / 255  # noqa: E731
    want = brute_force(flat(s), flat(t), res.sigma)
    assert math.isclose(res.mean, want.mean(), rel_tol=1e-9)
    assert math.isclose(res.se, want.std() / math.sqrt(len(want)), rel_tol=1e-9)
    assert res.sigma in PAPER_SIGMAS
    assert res.valid_means[PAPER_SIGMAS.tolist().index(res.sigma)] == max(res.valid_means)


def test_real_digits_beat_noise(digits):
    noise = torch.randint(0, 256, (200, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    real = parzen_evaluate(digits.x[:200], digits.x[200:300], digits.x[300:400]).mean
    fake = parzen_evaluate(noise, digits.x[200:300], digits.x[300:400]).mean
    assert real > fake + 100
