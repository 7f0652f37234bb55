"""The metric registry's entries: what a metric needs, how it is computed, read, ranked and printed, each said once.

A metric is one registered compute function:
    @metric("kid", needs="features", higher_is_better=False, fmt="kid: {kid:.5f}", headline="kid", min_samples=2)
    def kid(f: Features) -> dict: ...
`needs` says what it is computed from, and so which part of evaluate() calls it:
  features     the extractor's features and logits of the samples and of the real split (Features);
  samples      the samples themselves with the run they came from, when there is one (metrics/evaluate.Source);
  points       a 2-D toy run's points (metrics/evaluate.Source; goes alone);
  translation  an image-to-image run's test pairs (computed together by metrics/translation.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .. import registry

ORDER = ["modes", "parzen", "nearest", "elbo", "cas", "recon", "probe", "ssl", "l1", "psnr", "ssim", "acc", "fid", "kid", "is", "pr",
         "classes", "cycle", "identity"]  # the order results are printed in


@dataclass(frozen=True)
class MetricSpec:
    name: str
    needs: str  # "features" | "samples" | "points" | "translation" | "model" (the run's nets on real data)
    fmt: Callable[[dict], list[str]]  # its result -> printed lines
    higher_is_better: bool | None = None  # None: a diagnostic with no better direction
    min_samples: int = 1  # the fewest generated images it can score
    compute: Callable | None = None  # None for the translation metrics, computed together
    check: Callable | None = None  # check(source) raises UserError before anything is computed
    headline: str | None = None  # its result's key that can pick a best step (fid, kid, is)
    flat: dict = field(default_factory=dict)  # {column in metrics.jsonl / tables: key of its result}

    def value(self, results: dict) -> float:
        """The headline number of this metric in an evaluate() result."""
        return results[self.name][self.headline]


def metric(name: str, needs: str, higher_is_better, fmt, min_samples: int = 1, check=None, headline=None,
           flat=None):
    """Register a metric's compute function; fmt is a function of its result, or a format string over its keys."""
    lines = fmt if callable(fmt) else format_lines(fmt)

    def register(compute):
        spec = MetricSpec(name, needs, lines, higher_is_better, min_samples, compute, check, headline,
                          flat if flat is not None else ({name: headline} if headline else {}))
        registry.register("metric", name)(spec)
        return compute

    return register


def format_lines(template: str) -> Callable[[dict], list[str]]:
    return lambda r: [template.format(**r)]


def spec(name: str) -> MetricSpec:
    return registry.get("metric", name)


def names() -> list[str]:
    return [m for m in ORDER if m in registry.names("metric")]


def selectors() -> dict[str, MetricSpec]:
    """The metrics that can pick a best step (train.select=eval): those with a headline number."""
    return {m: spec(m) for m in names() if spec(m).headline}


def flat_scores(r: dict) -> dict:
    """The headline numbers of a result, flat, for metrics.jsonl and tables."""
    return {col: r[m][key] for m in names() if m in r for col, key in spec(m).flat.items()}


def format_results(r: dict) -> list[str]:
    lines = [line for m in names() if m in r for line in spec(m).fmt(r[m])]
    pv = r.get("provenance", {})
    if "extractor" in pv:
        lines.append(f"features:  {pv['extractor']} (sha256 {pv['sha256'][:16]}...), real: {pv['real']}")
    return lines


@dataclass
class Features:
    """What a feature metric is computed from: the samples' features and logits, the real split's, the extractor."""

    ff: torch.Tensor  # (N, F) generated
    fl: torch.Tensor  # (N, K) generated logits
    rf: torch.Tensor  # (M, F) real
    rl: torch.Tensor  # (M, K) real logits
    ex: object  # the Extractor
    seed: int = 0
    n_boot: int = 20
