"""evaluate(source, metrics): score a run (fresh samples from its generator) or a samples file, with provenance.

The one library entry point that `counterfeit evaluate`, evaluation during training and the benches call. Every
metric is registered (registry kind "metric") with what it needs and how it prints itself:
  features   fid, kid, is, pr, classes: all on one set of features of the bundled classifier (or Inception);
  run        elbo (a VAE run), cas (a conditional run), modes (a 2D toy run; goes alone);
  parzen     the 2014 protocol on continuous pixels in [0, 1];
  nearest    the memorisation check beside it: each sample's distance to its nearest training image (nearest.py).
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
    rf_rl = real if real is not None else real_features(ex, data_name, split)
    ff, fl = ex(fake)
    return score_features(ff, fl, data_name, metrics, ex, rf_rl, split, seed, n_boot, time.time() - t)


def score_features(ff: torch.Tensor, fl: torch.Tensor, data_name: str, metrics: list[str], ex: Extractor,
                   real: tuple, split: str = "test", seed: int = 0, n_boot: int = 20,
                   feature_s: float = 0.0) -> dict:
    """The metrics of generated images already through the extractor (features ff, logits fl), against the real
    split's (features, logits): evaluate_images' second half, and what a sharded evaluation merges into."""
    rf, rl = real
    out: dict = {"provenance": {**ex.provenance(), "real": f"{data_name} {split} ({len(rf)})", "n_fake": len(ff),
                                "seed": seed}, "seconds": {"features": round(feature_s, 2)}}
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


# ---------------------------------------------------------------------------------------------- the registry

from dataclasses import dataclass  # noqa: E402
from typing import Callable  # noqa: E402

from .. import registry  # noqa: E402


@dataclass(frozen=True)
class MetricSpec:
    name: str
    needs: str  # "features" | "run" | "parzen"
    fmt: Callable[[dict], list[str]]  # its result -> printed lines
    higher_is_better: bool | None = None
    min_samples: int = 1  # the fewest generated images it can score


def _metric(name: str, needs: str, higher_is_better, fmt, min_samples: int = 1) -> None:
    """Register a metric; fmt is a function of its result, or a format string over the result's keys."""
    lines = fmt if callable(fmt) else (lambda r, t=fmt: [t.format(**r)])
    registry.register("metric", name)(MetricSpec(name, needs, lines, higher_is_better, min_samples))


def _fmt_modes(m: dict) -> list[str]:
    out = [f"modes:     {m['modes_captured']}/{m['num_modes']} captured (>= {m['min_count']} high-quality samples "
           f"each), high quality {m['high_quality']:.1%} (within 3 std = {3 * m['std']:g} of a mode), {m['n']} samples",
           "per mode:  high-quality samples on each mode" + (", the grid as plotted (top row: largest x2)"
                                                             if m["num_modes"] == 25 else "")]
    counts = m["per_mode"]
    if m["num_modes"] == 25:  # grid modes are listed x1-major: mode 5a + b sits at (x1_a, x2_b)
        out += ["           " + " ".join(f"{counts[5 * a + b]:6d}" for a in range(5)) for b in reversed(range(5))]
    else:
        out.append("           " + " ".join(f"{c:6d}" for c in counts))
    return out


def _fmt_fid(f: dict) -> list[str]:
    ci = f" (95% CI {f['ci95'][0]:.3f}..{f['ci95'][1]:.3f})" if "ci95" in f else ""
    return [f"fid:       {f['fid']:.3f}{ci}"]


_metric("modes", "run", True, _fmt_modes)
_metric("parzen", "parzen", True, "parzen:    {mean:.1f} +- {se:.1f} nats (sigma {sigma:.3f}, {n_samples} samples, "
                                  "{n_test} test images)")
_metric("nearest", "parzen", None, "nearest:   copies {copies:.3f} (share of samples nearer a training image than 99% "
                                   "of the {n_test} test images are); median distance {samples_median:.3f} against "
                                   "the test images' {test_median:.3f} (ratio {ratio:.3f}, {n_train} training images)")
_metric("elbo", "run", True, "elbo:      {elbo:.2f} nats per image on {n} test images")
_metric("cas", "run", True, "cas:       {cas:.4f} (classifier trained on {n_generated} generated, tested on real); "
                            "same classifier on {n_real} real images: {real_data_accuracy:.4f}")
_metric("fid", "features", False, _fmt_fid, min_samples=2)  # a covariance
_metric("kid", "features", False, "kid:       {kid:.5f} +- {kid_std:.5f}", min_samples=2)
_metric("is", "features", True, "is:        {is:.3f} +- {is_std:.3f}", min_samples=10)  # one image per split
_metric("pr", "features", True, "precision: {precision:.3f}  recall: {recall:.3f}  density: {density:.3f}  "
                                "coverage: {coverage:.3f} (k={k})", min_samples=4)  # k + 1 neighbours
_metric("classes", "features", True, "classes:   {classes_covered}/{num_classes} covered, largest share "
                                     "{largest_class_share:.3f}")

from . import translation as _tr  # noqa: E402

# image-to-image runs (metrics/translation.py); fid and kid there are in the classifier's features as above
_metric("l1", "translation", False, "l1:        {l1:.4f} +- {std:.4f} (pixels in [0, 1], {n} test pairs; the input "
                                     "itself: {baseline_input:.4f})")
_metric("psnr", "translation", True, "psnr:      {psnr:.2f} dB (the input itself: {baseline_input:.2f} dB)")
_metric("ssim", "translation", True, "ssim:      {ssim:.4f} (the input itself: {baseline_input:.4f})")
_metric("acc", "translation", True, _tr.fmt_acc)
_metric("cycle", "translation", False, "cycle:     |G_BA(G_AB(a)) - a| {cycle_A:.4f}   |G_AB(G_BA(b)) - b| {cycle_B:.4f}")
_metric("identity", "translation", None, _tr.fmt_identity)

METRIC_ORDER = ["modes", "parzen", "nearest", "elbo", "cas", "l1", "psnr", "ssim", "acc", "fid", "kid", "is", "pr",
                "classes", "cycle", "identity"]


def metric_names() -> list[str]:
    return [m for m in METRIC_ORDER if m in registry.names("metric")]


def format_results(r: dict) -> list[str]:
    lines = [line for m in METRIC_ORDER if m in r for line in registry.get("metric", m).fmt(r[m])]
    pv = r.get("provenance", {})
    if "extractor" in pv:
        lines.append(f"features:  {pv['extractor']} (sha256 {pv['sha256'][:16]}...), real: {pv['real']}")
    return lines


# ---------------------------------------------------------------------------------------------- evaluate()


def evaluate_parzen(samples: torch.Tensor, data_name: str) -> dict:
    """The 2014 protocol: sigma from logspace(-1, 0, 10) on 1,000 validation images, scored on the test set."""
    from .parzen import parzen_evaluate

    if data_name == "mnist":
        valid = load_data("mnist", "paper-valid").subset(0, 1000)
    else:
        valid = load_data(data_name, "train").subset(0, 1000)
    test = load_data(data_name, "test")
    if tuple(samples.shape[1:]) != valid.shape:
        raise UserError(f"samples are {tuple(samples.shape[1:])}, dataset '{data_name}' images are {valid.shape}")
    res = parzen_evaluate(samples, valid.x, test.x).as_dict()
    res["valid"] = "train[50000:51000]" if data_name == "mnist" else "train[0:1000]"
    res["test"] = f"{data_name} test ({len(test)})"
    return res


def evaluate_modes(recipe, data_name: str, n: int, seed: int, drs: dict | None) -> dict:
    """VEEGAN / PacGAN's mode count on a 2D mixture (toy:ring8, toy:grid25): n samples, raw or through DRS."""
    from ..data.toy import TOYS, toy_modes as mixture_modes
    from ..sampling import generate
    from .modes import toy_modes

    mixture = data_name.removeprefix("toy:")
    if mixture not in TOYS:
        raise UserError(f"metric 'modes' needs a run on a 2D mixture ({', '.join('toy:' + t for t in TOYS)}), "
                        f"not '{data_name}'")
    if drs is not None:
        from ..rejection import generate_rejected

        x, _ = generate_rejected(recipe, n, seed=seed, as_uint8=False, progress=True, **drs)
    else:
        x = generate(recipe, n, seed=seed, as_uint8=False)
    modes, std = mixture_modes(mixture)
    r = toy_modes(x.reshape(len(x), -1), modes, std)
    return {**r, "mixture": data_name, "std": std, "modes": modes.tolist()}


def _check_samples(samples: torch.Tensor, data_name: str, metrics: list[str], source: str) -> None:
    """Enough images, of the dataset's shape, before any extractor or real data is loaded."""
    from ..data import describe_shape, image_shape

    n = len(samples)
    if n == 0:
        raise UserError(f"{source}: no images to score")
    need = max((registry.get("metric", m).min_samples, m) for m in metrics)
    if n < need[0]:
        raise UserError(f"{source}: {n} image{'s' if n != 1 else ''}; metric '{need[1]}' needs at least {need[0]}")
    want, got = image_shape(data_name), tuple(samples.shape[1:])
    if got != want:
        raise UserError(f"{source}: images are {describe_shape(got)}; '{data_name}' images are "
                        f"{describe_shape(want)}")


def evaluate(source, metrics: list[str] | None = None, data: str | None = None, n: int = 10000, seed: int = 0,
             drs: dict | None = None, extractor: Extractor | None = None, loaded=None, n_boot: int = 20,
             direction: str = "AtoB", net_mode: str = "eval") -> dict:
    """Score a run dir / checkpoint (n fresh samples) or a samples .npz with the named metrics.

    metrics None: `modes` for a 2D toy run, `parzen` otherwise, the paired / cycle scores for a translation run.
    drs: {"fit_steps", "quantile"} to sample through discriminator rejection sampling. loaded: (recipe, cfg, info)
    of the run when the caller already holds it. direction, net_mode: translation runs (metrics/translation.py).
    Returns {"provenance", "data", "seconds", <metric>: {...}}."""
    from ..data import to_uint8
    from ..recipes.translation import Translation
    from ..sampling import generate, load_generator

    src = Path(source)
    is_file = src.suffix == ".npz"
    if not is_file and loaded is None:
        loaded = load_generator(src)
    if loaded is not None and isinstance(loaded[0], Translation):
        if drs or extractor is not None or data:
            raise UserError("--drs, --features and --data do not apply to a translation run (it is scored on its "
                            "own test split with the target domain's classifier)")
        from .translation import evaluate_translation

        recipe, cfg, info = loaded
        res = evaluate_translation(recipe, cfg, info, metrics, n=n, direction=direction,
                                   net_mode=net_mode, seed=seed, n_boot=n_boot)
        res.pop("outputs")
        res["provenance"]["source"] = str(src)
        return res
    if metrics is None:  # the default follows the config the checkpoint carries
        metrics = ["modes"] if loaded and loaded[1].data.name.startswith("toy:") else ["parzen"]
    known = metric_names()
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none)'} (known: {', '.join(known)})")
    if "modes" in metrics:  # 2D points, not images: the image metrics do not apply
        if len(metrics) > 1:
            raise UserError(f"metric 'modes' scores 2D toy runs and goes alone (asked for {', '.join(metrics)})")
        if is_file:
            raise UserError("metric 'modes' needs a run (a 2D toy generator), not a samples file")
        recipe, cfg, info = loaded
        t = time.time()
        res = evaluate_modes(recipe, data or cfg.data.name, n, seed, drs)
        return {"provenance": {"source": str(src), "checkpoint": info["path"], "step": info["step"],
                               "ema": info["ema"], "n": n, "seed": seed,
                               "sampler": "discriminator rejection sampling" if drs else "G", **(drs or {})},
                "data": res["mixture"], "modes": res, "seconds": {"modes": round(time.time() - t, 2)}}
    prov: dict = {"source": str(src)}
    floats = None
    if is_file:
        from ..data import _load_npz

        if not src.is_file():
            raise UserError(f"samples file not found: {src}")
        if drs:
            raise UserError("--drs needs a run (its generator and discriminator), not a samples file")
        run_only = [m for m in metrics if registry.get("metric", m).needs == "run"]
        if run_only:
            raise UserError(f"metric(s) {', '.join(run_only)} need a run, not a samples file")
        samples = _load_npz(src)
        data_name = data or "mnist"
        prov.update(samples="uint8 from file", n=len(samples))
    else:
        recipe, cfg, info = loaded
        if cfg.data.name.startswith("toy:"):
            raise UserError(f"'{cfg.data.name}' is a toy run of points, not images: score it with --metrics modes "
                            f"(2D mixtures), not {', '.join(metrics)}")
        data_name = reference_name(data or cfg.data.name)  # the embedded digits are scored as MNIST
        if drs:
            from ..rejection import generate_rejected

            floats, prov["rejection"] = generate_rejected(recipe, n, seed=seed, as_uint8=False, progress=True, **drs)
        elif "parzen" in metrics:  # continuous pixels in [0, 1], as the paper scored them; uint8 derived from them
            floats = generate(recipe, n, seed=seed, as_uint8=False)
        # floats are in [0, 1] whatever the nets' range; otherwise uint8, as a user's samples file would hold
        samples = to_uint8(floats, "01") if floats is not None else generate(recipe, n, seed=seed)
        prov.update(checkpoint=info["path"], step=info["step"], ema=info["ema"], n=n, seed=seed)
    _check_samples(samples, data_name, metrics, str(src))
    results: dict = {"provenance": prov, "data": data_name, "seconds": {}}
    if "parzen" in metrics:
        t = time.time()
        results["parzen"] = evaluate_parzen(floats if floats is not None else samples, data_name)
        results["parzen"]["samples"] = "float in [0, 1]" if floats is not None else "uint8 / 255"
        results["seconds"]["parzen"] = round(time.time() - t, 2)
    if "nearest" in metrics:
        from .nearest import memorisation

        t = time.time()
        # the images the run trained on (its own split: the 2014 GAN's train[0:50000]); a samples file: the train split
        train_name, train_split = (cfg.data.name, cfg.data.split) if loaded is not None and not data else \
            (data_name, "train")
        train_x = load_data(train_name, train_split).x
        results["nearest"] = {**memorisation(floats if floats is not None else samples, train_x,
                                             load_data(data_name, "test").x),
                              "train": f"{train_name} {train_split}", "test": f"{data_name} test"}
        results["seconds"]["nearest"] = round(time.time() - t, 2)
    if "elbo" in metrics:
        if cfg.model.recipe != "vae":
            raise UserError("metric 'elbo' needs a VAE run (recipe vae)")
        from ..recipes.vae import evaluate_elbo

        t = time.time()
        results["elbo"] = {**evaluate_elbo(recipe, load_data(data_name, "test").x, seed=seed),
                           "data": f"{data_name} test"}
        results["seconds"]["elbo"] = round(time.time() - t, 2)
    if "cas" in metrics:
        if not getattr(recipe, "conditional", False):
            raise UserError("metric 'cas' needs a conditional run (a recipe with num_classes > 0, e.g. cgan-mnist)")
        from .cas import classification_accuracy_score

        t = time.time()
        test, train = load_data(data_name, "test"), load_data(data_name, "train")
        results["cas"] = {**classification_accuracy_score(recipe, test.x, test.y, n=n, seed=seed,
                                                          real=(train.x, train.y)), "data": f"{data_name} test"}
        results["seconds"]["cas"] = round(time.time() - t, 2)
    feature_metrics = [m for m in metrics if registry.get("metric", m).needs == "features"]
    if feature_metrics:
        r = evaluate_images(samples, data_name, feature_metrics, extractor=extractor, seed=seed, n_boot=n_boot)
        results["provenance"].update(r.pop("provenance"))
        results["seconds"].update(r.pop("seconds"))
        results.update(r)
    return results
