"""Scores of images in a feature space: the real split's features (cached), the samples' features, and the metrics
computed from them (fid, kid, is, pr, classes), each a registered function (spec.py)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from ..data import fetch, load_data
from ..errors import UserError
from .features import Extractor, load_extractor
from .fid import FID, GaussianStats, frechet_distance
from .inception_score import InceptionScore
from .kid import KID
from .modes import class_coverage
from .prdc import prdc
from .spec import Features, metric, spec


def reference_name(data_name: str) -> str:
    """The dataset whose classifier and test split score samples of `data_name` (the embedded digits are MNIST's)."""
    return "mnist" if data_name == "embedded" else data_name


def stats_path(ex: Extractor, data_name: str, split: str, x: torch.Tensor) -> Path:
    """Cache file of a split's real features: keyed by its pixel content (a changed folder misses) and extractor."""
    content = hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()[:16]
    stem = Path(data_name).name if Path(data_name).exists() else data_name
    variant = f"-{ex.variant}" if ex.variant else ""  # bf16 features differ from fp32 ones: their own cache
    return fetch.cache_dir() / "stats" / f"{stem.replace('/', '_')}-{split}-{content}-{ex.sha256[:16]}{variant}.pt"


def real_features_cached(ex: Extractor, data_name: str, split: str = "test") -> bool:
    return stats_path(ex, data_name, split, load_data(data_name, split).x).is_file()


def real_features(ex: Extractor, data_name: str, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits of the real split, cached per (the split's pixel content, extractor sha256)."""
    from ..checkpoint import atomic_save

    data = load_data(data_name, split)
    path = stats_path(ex, data_name, split, data.x)
    if path.is_file():
        try:
            d = torch.load(path, weights_only=True)
            return d["feats"], d["logits"]
        except Exception:
            path.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    feats, logits = ex(data.x)
    atomic_save({"feats": feats, "logits": logits}, path)
    return feats, logits


def evaluate_images(fake: torch.Tensor, data_name: str, metrics: list[str], extractor: Extractor | None = None,
                    split: str = "test", seed: int = 0, n_boot: int = 20, real: tuple | None = None) -> dict:
    """fake: uint8 (N, C, H, W). Returns {metric: {...}, "provenance": {...}, "seconds": {...}}.

    real: the split's (features, logits) from real_features, when the caller already holds them."""
    ex = extractor or load_extractor(data_name)
    t = time.time()
    rf_rl = real if real is not None else real_features(ex, data_name, split)
    ff, fl = ex(fake)
    return score_features(ff, fl, data_name, metrics, ex, rf_rl, split, seed, n_boot, time.time() - t)


def score_features(ff: torch.Tensor, fl: torch.Tensor, data_name: str, metrics: list[str], ex: Extractor,
                   real: tuple, split: str = "test", seed: int = 0, n_boot: int = 20,
                   feature_s: float = 0.0) -> dict:
    """The metrics of generated images already through the extractor (features ff, logits fl), against the real
    split's (features, logits): evaluate_images' second half, and what a sharded evaluation merges into."""
    f = Features(ff, fl, *real, ex, seed, n_boot)
    out: dict = {"provenance": {**ex.provenance(), "real": f"{data_name} {split} ({len(f.rf)})", "n_fake": len(ff),
                                "seed": seed}, "seconds": {"features": round(feature_s, 2)}}
    for m in metrics:
        s = spec(m)
        if s.needs != "features":
            raise UserError(f"metric '{m}' is not computed from features")
        t = time.time()
        out[m] = s.compute(f)
        out["seconds"][m] = round(time.time() - t, 2)
    return out


SMALL_FID = 2000  # generated samples under which FID's upward bias is large against its spread


def _fmt_fid(f: dict) -> list[str]:
    ci = f" (bootstrap 95% {f['ci95'][0]:.3f}..{f['ci95'][1]:.3f})" if "ci95" in f else ""
    lines = [f"fid:       {f['fid']:.3f}{ci}"]
    if f.get("n_fake", SMALL_FID) < SMALL_FID:
        lines.append(f"           n={f['n_fake']}: FID is biased upward at small n (its bootstrap range can sit above "
                     "it); compare FIDs at equal n, 10,000 where you can")
    return lines


@metric("fid", "features", False, _fmt_fid, min_samples=2, headline="fid")  # a covariance needs two samples
def fid(f: Features) -> dict:
    """Frechet distance of the Gaussians of real and generated features, with a bootstrap interval over the
    generated set."""
    m = FID()
    m.update(f.rf, real=True)
    m.update(f.ff, real=False)
    res = m.compute()
    mu_r, s_r = m.real.mean_cov()
    g = torch.Generator().manual_seed(f.seed)
    boots = []
    for _ in range(f.n_boot):  # resample the generated set with replacement
        st = GaussianStats()
        st.update(f.ff[torch.randint(len(f.ff), (len(f.ff),), generator=g)])
        boots.append(frechet_distance(mu_r, s_r, *st.mean_cov()))
    if boots:
        b = torch.tensor(boots)
        # the percentile interval of FID over resampled generated sets: their spread, and the small-sample bias that
        # resampling adds (duplicates), not a confidence interval around the estimate
        res["ci95"] = [float(b.quantile(0.025)), float(b.quantile(0.975))]
        res["bootstrap"] = f.n_boot
        res["ci95_kind"] = "percentile bootstrap over the generated set (resampling spread, biased up at small n)"
    return res


@metric("kid", "features", False, "kid:       {kid:.5f} +- {kid_std:.5f}", min_samples=2, headline="kid")
def kid(f: Features) -> dict:
    m = KID(subsets=100, subset_size=1000, seed=f.seed)
    m.update(f.rf, real=True)
    m.update(f.ff, real=False)
    return m.compute()


@metric("is", "features", True, "is:        {is:.3f} +- {is_std:.3f}", min_samples=10, headline="is")  # 10 splits
def inception_score(f: Features) -> dict:
    if f.fl.shape[1] == 0:
        raise UserError(f"metric 'is' needs class logits; {f.ex.name} here gives its pooled features only (the "
                        "inception extra's TorchScript): pass --inception PATH with the full weights for IS")
    s = InceptionScore(10)
    s.update(f.fl)
    return s.compute()


@metric("pr", "features", True, "precision: {precision:.3f}  recall: {recall:.3f}  density: {density:.3f}  "
        "coverage: {coverage:.3f} (k={k})", min_samples=4,  # k + 1 neighbours
        flat={k: k for k in ("precision", "recall", "density", "coverage")})
def precision_recall(f: Features) -> dict:
    return prdc(f.rf, f.ff, k=3)


@metric("classes", "features", True, "classes:   {classes_covered}/{num_classes} covered, largest share "
        "{largest_class_share:.3f}", flat={"classes": "classes_covered", "largest_class_share": "largest_class_share"})
def classes(f: Features) -> dict:
    if not f.ex.domain:
        raise UserError(f"metric 'classes' needs the dataset's own classifier, not {f.ex.name}")
    return class_coverage(f.fl, f.rl.shape[1])
