"""Benchmark: the Parzen-window estimate's speed, as the long 2014 run's monitor and Table 1's evaluation use it.

    COUNTERFEIT_DATA=../shared/datasets python -m bench.parzen_speed [--rounds 3]

Two jobs on real MNIST digits standing in for samples (train[0:10000]):
  monitor   10,000 samples scored on the 10,000 validation digits train[50000:60000] at the paper's 10 sigmas
            (train.select=parzen, every 5 epochs of bench/gan2014_long.py)
  table1    sigma chosen on train[50000:51000], then the 10,000 test digits at that sigma (`counterfeit evaluate`)
each timed with counterfeit's `parzen_log_likelihoods` and with `logsumexp_reference` below (the formulation it
replaced: one torch.logsumexp over a (sigmas, chunk, n) tensor), alternating within each round; the two must agree.
Writes bench/results/parzen-speed.json (machine, command, seconds, ratios per round).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit.data import load_data  # noqa: E402
from counterfeit.metrics.parzen import PAPER_SIGMAS, flat_pixels, parzen_log_likelihoods  # noqa: E402


def logsumexp_reference(samples, points, sigmas, chunk: int = 1000) -> torch.Tensor:
    """The estimate as one torch.logsumexp per chunk of points over all sigmas at once (the code before 2026-12-06)."""
    mu, x = flat_pixels(samples), flat_pixels(points)
    n, d = mu.shape
    sig = torch.as_tensor(np.asarray(sigmas, dtype=np.float64)).reshape(-1, 1, 1)
    mu_sq = (mu * mu).sum(1)
    out = []
    for i in range(0, x.shape[0], chunk):
        xc = x[i : i + chunk]
        d2 = ((xc * xc).sum(1, keepdim=True) + mu_sq - 2.0 * xc @ mu.T).clamp_min_(0.0)
        out.append(torch.logsumexp(-d2.unsqueeze(0) / (2.0 * sig**2), dim=2))
    return torch.cat(out, 1) - math.log(n) - d * torch.log(sig.reshape(-1, 1) * math.sqrt(2.0 * math.pi))


def jobs(samples, valid, valid1k, test):
    def monitor(f):
        return f(samples, valid, PAPER_SIGMAS).mean(1)

    def table1(f):
        v = f(samples, valid1k, PAPER_SIGMAS).mean(1)
        sigma = float(PAPER_SIGMAS[int(v.argmax())])
        return f(samples, test, [sigma])[0].mean().reshape(1)

    return {"monitor": monitor, "table1": table1}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--result", default=str(HERE / "results" / "parzen-speed.json"))
    args = p.parse_args(argv)
    train = load_data("mnist", "train")
    samples, valid, test = train.x[:10000], train.x[50000:60000], load_data("mnist", "test").x
    impls = {"counterfeit": parzen_log_likelihoods, "logsumexp_reference": logsumexp_reference}
    out = {"command": f"COUNTERFEIT_DATA=../shared/datasets python -m bench.parzen_speed --rounds {args.rounds}",
           "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
           "about": __doc__.split("\n\n")[1].strip(), "jobs": {}}
    for name, job in jobs(samples, valid, valid[:1000], test).items():
        secs = {k: [] for k in impls}
        values = {}
        for r in range(args.rounds):
            for k in (list(impls) if r % 2 == 0 else list(impls)[::-1]):
                t = time.perf_counter()
                values[k] = job(impls[k])
                secs[k].append(round(time.perf_counter() - t, 2))
        diff = float((values["counterfeit"] - values["logsumexp_reference"]).abs().max())
        assert diff < 1e-6, f"{name}: the two formulations disagree by {diff} nats"
        ratios = [round(a / b, 3) for a, b in zip(secs["counterfeit"], secs["logsumexp_reference"])]
        out["jobs"][name] = {"seconds": secs, "time_ratio_by_round": ratios, "max_abs_difference_nats": diff,
                             "mean_log_likelihood": [round(float(v), 3) for v in values["counterfeit"]]}
        print(name, json.dumps(out["jobs"][name]), flush=True)
    Path(args.result).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
