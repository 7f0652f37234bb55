"""The metric protocol (after torchmetrics): update() with batches, compute() a dict, reset(), merge().

State is held in float64 so that sums stream and merge across processes without drift. Every metric says
whether higher is better, and its compute() names the counts it used.
"""

from __future__ import annotations

import torch


class Metric:
    higher_is_better: bool | None = None
    name: str = ""

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, *args, **kwargs) -> None:
        raise NotImplementedError

    def compute(self) -> dict:
        raise NotImplementedError

    def merge(self, other: "Metric") -> None:
        raise NotImplementedError


class FeatureStore(Metric):
    """Keeps every feature row (float64) for metrics that need pairwise structure (KID, PR, IS)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self._real: list[torch.Tensor] = []
        self._fake: list[torch.Tensor] = []

    def update(self, feats: torch.Tensor, real: bool) -> None:
        (self._real if real else self._fake).append(feats.detach().to("cpu", torch.float64).flatten(1))

    def merge(self, other):
        self._real += other._real
        self._fake += other._fake

    def features(self) -> tuple[torch.Tensor, torch.Tensor]:
        cat = lambda xs: torch.cat(xs) if xs else torch.empty(0, 0, dtype=torch.float64)  # noqa: E731
        return cat(self._real), cat(self._fake)
