"""Score generated images against a dataset with every metric on one set of features, with provenance.

Real features are computed once per (dataset, split, extractor sha256) and cached in the user cache dir.
FID gets a bootstrap confidence interval over the generated set; KID reports its std over subsets.
"""

from __future__ import annotations

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

FEATURE_METRICS = ["fid", "kid", "is", "pr", "classes"]


def reference_name(data_name: str) -> str:
    """The dataset whose classifier and test split score samples of `data_name` (the embedded digits are MNIST's)."""
    return "mnist" if data_name == "embedded" else data_name


# metrics that can pick a best step: how to read the value, and whether lower is better
SELECTORS = {"fid": (lambda r: r["fid"]["fid"], True), "kid": (lambda r: r["kid"]["kid"], True),
             "is": (lambda r: r["is"]["is"], False)}


def flat_scores(r: dict) -> dict:
    """The headline numbers of an evaluate_images result, flat, for metrics.jsonl and tables."""
    out = {}
    if "fid" in r:
        out["fid"] = r["fid"]["fid"]
    if "kid" in r:
        out["kid"] = r["kid"]["kid"]
    if "is" in r:
        out["is"] = r["is"]["is"]
    if "pr" in r:
        out.update({k: r["pr"][k] for k in ("precision", "recall", "density", "coverage")})
    if "classes" in r:
        out["classes"] = r["classes"]["classes_covered"]
        out["largest_class_share"] = r["classes"]["largest_class_share"]
    return out


def _stats_path(ex: Extractor, data_name: str, split: str, x: torch.Tensor) -> Path:
    """Cache file of a split's real features: keyed by its pixel content (a changed folder misses) and extractor."""
    import hashlib

    content = hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()[:16]
    stem = Path(data_name).name if Path(data_name).exists() else data_name
    return fetch.cache_dir() / "stats" / f"{stem.replace('/', '_')}-{split}-{content}-{ex.sha256[:16]}.pt"


def real_features_cached(ex: Extractor, data_name: str, split: str = "test") -> bool:
    return _stats_path(ex, data_name, split, load_data(data_name, split).x).is_file()


def real_features(ex: Extractor, data_name: str, split: str = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Features and logits of the real split, cached per (the split's pixel content, extractor sha256)."""
    data = load_data(data_name, split)
    path = _stats_path(ex, data_name, split, data.x)
    if path.is_file():
        try:
            d = torch.load(path, weights_only=True)
            return d["feats"], d["logits"]
        except Exception:
            path.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    feats, logits = ex(data.x)
    path.parent.mkdir(parents=True, exist_ok=True)
    from ..checkpoint import atomic_save

    atomic_save({"feats": feats, "logits": logits}, path)
    return feats, logits


def evaluate_images(fake: torch.Tensor, data_name: str, metrics: list[str], extractor: Extractor | None = None,
                    split: str = "test", seed: int = 0, n_boot: int = 20, real: tuple | None = None) -> dict:
    """fake: uint8 (N, C, H, W). Returns {metric: {...}, "provenance": {...}, "seconds": {...}}.

    real: the split's (features, logits) from real_features, when the caller already holds them."""
    ex = extractor or load_extractor(data_name)
    t = time.time()
    rf, rl = real if real is not None else real_features(ex, data_name, split)
    ff, fl = ex(fake)
    out: dict = {"provenance": {**ex.provenance(), "real": f"{data_name} {split} ({len(rf)})", "n_fake": len(ff),
                                "seed": seed}, "seconds": {"features": round(time.time() - t, 2)}}
    for m in metrics:
        t = time.time()
        if m == "fid":
            fid = FID()
            fid.update(rf, real=True)
            fid.update(ff, real=False)
            res = fid.compute()
            mu_r, s_r = fid.real.mean_cov()
            g = torch.Generator().manual_seed(seed)
            boots = []
            for _ in range(n_boot):  # resample the generated set with replacement
                st = GaussianStats()
                st.update(ff[torch.randint(len(ff), (len(ff),), generator=g)])
                boots.append(frechet_distance(mu_r, s_r, *st.mean_cov()))
            if boots:
                b = torch.tensor(boots)
                res["ci95"] = [float(b.quantile(0.025)), float(b.quantile(0.975))]
                res["bootstrap"] = n_boot
            out["fid"] = res
        elif m == "kid":
            kid = KID(subsets=100, subset_size=1000, seed=seed)
            kid.update(rf, real=True)
            kid.update(ff, real=False)
            out["kid"] = kid.compute()
        elif m == "is":
            s = InceptionScore(10)
            s.update(fl)
            out["is"] = s.compute()
        elif m == "pr":
            out["pr"] = prdc(rf, ff, k=3)
        elif m == "classes":
            if not ex.domain:
                raise UserError(f"metric 'classes' needs the dataset's own classifier, not {ex.name}")
            out["classes"] = class_coverage(fl, rl.shape[1])
        else:
            raise UserError(f"unknown metric '{m}'")
        out["seconds"][m] = round(time.time() - t, 2)
    return out
