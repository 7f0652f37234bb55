"""Inception Score (Salimans et al. 2016) on a classifier's softmax: exp(E_x KL(p(y|x) || p(y))),
mean and std over 10 splits of the generated set."""

from __future__ import annotations

import torch

from .base import Metric


class InceptionScore(Metric):
    name, higher_is_better = "is", True

    def __init__(self, splits: int = 10):
        self.splits = splits
        self.reset()

    def reset(self):
        self._logp: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor) -> None:
        self._logp.append(torch.log_softmax(logits.detach().to("cpu", torch.float64), 1))

    def merge(self, other):
        self._logp += other._logp

    def compute(self) -> dict:
        logp = torch.cat(self._logp)  # (N, K)
        scores = []
        for part in torch.chunk(logp, self.splits):
            log_py = torch.logsumexp(part, 0) - torch.log(torch.tensor(float(len(part)), dtype=torch.float64))
            kl = (part.exp() * (part - log_py)).sum(1).mean()
            scores.append(kl.exp())
        s = torch.stack(scores)
        return {"is": float(s.mean()), "is_std": float(s.std()), "splits": self.splits, "n_fake": len(logp)}
