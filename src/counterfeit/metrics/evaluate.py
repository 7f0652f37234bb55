"""evaluate(source, metrics): score a run (fresh samples from its generator) or a samples file, with provenance.

The one library entry point that `counterfeit evaluate`, evaluation during training and the benches call. It
resolves the source once (a run dir or checkpoint, a samples .npz; a noise, toy or translation run), makes the
samples once, and dispatches each metric through the registry (spec.py) by what it needs:
  features   fid, kid, is, pr, classes: all on one set of features of the bundled classifier (scores.py);
  samples    parzen (the 2014 protocol on continuous pixels in [0, 1]), nearest (the memorisation check beside it),
             elbo (a VAE run), cas (a conditional run);
  points     modes (a 2D toy run; goes alone);
  translation the paired and cycle scores of an image-to-image run (translation.py).
Real features are computed once per (dataset, split, extractor sha256) and cached in the user cache dir.
FID gets a bootstrap confidence interval over the generated set; KID reports its std over subsets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import load_data, load_npz, to_uint8
from ..errors import UserError
from . import inference, translation  # noqa: F401  (inference registers recon and probe)
from .features import Extractor
from .scores import (evaluate_images, real_features, real_features_cached, reference_name,  # noqa: F401
                     score_features)
from .spec import ORDER as METRIC_ORDER  # noqa: F401
from .spec import flat_scores, format_results, metric, names, selectors, spec  # noqa: F401

FEATURE_METRICS = ["fid", "kid", "is", "pr", "classes"]


def metric_names() -> list[str]:
    return names()


@dataclass
class Source:
    """What is scored: the samples (uint8, N C H W; `floats` in [0, 1] where they were drawn so), the dataset that
    scores them, and the run they came from (None for a samples file)."""

    path: Path
    samples: torch.Tensor | None = None
    floats: torch.Tensor | None = None
    data_name: str = "mnist"
    data_override: str | None = None  # --data, when given
    recipe: object = None
    cfg: object = None
    info: dict | None = None
    n: int = 0
    seed: int = 0
    drs: dict | None = None
    provenance: dict = field(default_factory=dict)

    @property
    def pixels(self) -> torch.Tensor:
        """Continuous pixels where the run drew them, else the uint8 samples."""
        return self.floats if self.floats is not None else self.samples


def evaluate(source, metrics: list[str] | None = None, data: str | None = None, n: int = 10000, seed: int = 0,
             drs: dict | None = None, extractor: Extractor | None = None, loaded=None, n_boot: int = 20,
             direction: str = "AtoB", net_mode: str = "eval") -> dict:
    """Score a run dir / checkpoint (n fresh samples) or a samples .npz with the named metrics.

    metrics None: `modes` for a 2D toy run, `parzen` otherwise, the paired / cycle scores for a translation run.
    drs: {"fit_steps", "quantile"} to sample through discriminator rejection sampling. loaded: (recipe, cfg, info)
    of the run when the caller already holds it. direction, net_mode: translation runs (metrics/translation.py).
    Returns {"provenance", "data", "seconds", <metric>: {...}}."""
    from ..recipes.translation import Translation
    from ..sampling import load_generator

    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    src = Path(source)
    if src.suffix != ".npz" and loaded is None:
        loaded = load_generator(src)
    if loaded is not None and isinstance(loaded[0], Translation):
        if drs or extractor is not None or data:
            raise UserError("--drs, --features and --data do not apply to a translation run (it is scored on its "
                            "own test split with the target domain's classifier)")
        res = translation.evaluate_translation(*loaded, metrics, n=n, direction=direction, net_mode=net_mode,
                                               seed=seed, n_boot=n_boot)
        res.pop("outputs")
        res["provenance"]["source"] = str(src)
        return res
    metrics = checked_metrics(metrics, loaded)
    s = Source(src, data_override=data, n=n, seed=seed, drs=drs)
    if loaded is not None:
        s.recipe, s.cfg, s.info = loaded
    if metrics == ["modes"]:
        return score_points(s)
    for m in metrics:  # every refusal before any sample is drawn
        if spec(m).check is not None:
            spec(m).check(s)
    if all(spec(m).needs == "model" for m in metrics):  # the run's own nets on its test split: no samples
        s.data_name = reference_name(s.cfg.data.name)
        s.provenance = {"source": str(s.path), "checkpoint": s.info["path"], "step": s.info["step"], "n": s.n}
    else:
        draw_samples(s, metrics)
    results: dict = {"provenance": s.provenance, "data": s.data_name, "seconds": {}}
    for m in [m for m in names() if m in metrics and spec(m).needs in ("samples", "model")]:
        t = time.time()
        results[m] = spec(m).compute(s)
        results["seconds"][m] = round(time.time() - t, 2)
    by_features = [m for m in metrics if spec(m).needs == "features"]
    if by_features:
        r = evaluate_images(s.samples, s.data_name, by_features, extractor=extractor, seed=seed, n_boot=n_boot)
        results["provenance"].update(r.pop("provenance"))
        results["seconds"].update(r.pop("seconds"))
        results.update(r)
    return results


def checked_metrics(metrics: list[str] | None, loaded) -> list[str]:
    """The metrics asked for, known and able to go together; None: the default the run's config implies."""
    if metrics is None:
        metrics = ["modes"] if loaded and loaded[1].data.name.startswith("toy:") else ["parzen"]
    known = names()
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none)'} (known: {', '.join(known)})")
    paired = [m for m in metrics if spec(m).needs == "translation"]
    if paired:
        raise UserError(f"metric(s) {', '.join(paired)} score image-to-image runs (pix2pix, cyclegan), not this one")
    if "modes" in metrics and len(metrics) > 1:  # 2D points, not images: the image metrics do not apply
        raise UserError(f"metric 'modes' scores 2D toy runs and goes alone (asked for {', '.join(metrics)})")
    return list(metrics)


def draw_samples(s: Source, metrics: list[str]) -> None:
    """The samples of s: read from its file, or drawn from its run (through DRS where asked); then checked."""
    from ..sampling import generate

    if s.recipe is None:
        if not s.path.is_file():
            raise UserError(f"samples file not found: {s.path}")
        if s.drs:
            raise UserError("--drs needs a run (its generator and discriminator), not a samples file")
        s.samples, s.data_name = load_npz(s.path), s.data_override or "mnist"
        s.provenance = {"source": str(s.path), "samples": "uint8 from file", "n": len(s.samples)}
    else:
        if s.cfg.data.name.startswith("toy:"):
            raise UserError(f"'{s.cfg.data.name}' is a toy run of points, not images: score it with --metrics modes "
                            f"(2D mixtures), not {', '.join(metrics)}")
        s.data_name = reference_name(s.data_override or s.cfg.data.name)  # the embedded digits are scored as MNIST
        s.provenance = {"source": str(s.path)}
        if s.drs:
            from ..rejection import generate_rejected

            s.floats, s.provenance["rejection"] = generate_rejected(s.recipe, s.n, seed=s.seed, as_uint8=False,
                                                                    progress=True, **s.drs)
        elif "parzen" in metrics:  # continuous pixels in [0, 1], as the paper scored them; uint8 derived from them
            s.floats = generate(s.recipe, s.n, seed=s.seed, as_uint8=False)
        # floats are in [0, 1] whatever the nets' range; otherwise uint8, as a user's samples file would hold
        s.samples = to_uint8(s.floats, "01") if s.floats is not None else generate(s.recipe, s.n, seed=s.seed)
        s.provenance.update(checkpoint=s.info["path"], step=s.info["step"], ema=s.info["ema"], n=s.n, seed=s.seed)
    check_samples(s.samples, s.data_name, metrics, str(s.path))


def check_samples(samples: torch.Tensor, data_name: str, metrics: list[str], source: str) -> None:
    """Enough images, of the dataset's shape, before any extractor or real data is loaded."""
    from ..data import describe_shape, image_shape

    n = len(samples)
    if n == 0:
        raise UserError(f"{source}: no images to score")
    need = max((spec(m).min_samples, m) for m in metrics)
    if n < need[0]:
        raise UserError(f"{source}: {n} image{'s' if n != 1 else ''}; metric '{need[1]}' needs at least {need[0]}")
    want, got = image_shape(data_name), tuple(samples.shape[1:])
    if got != want:
        raise UserError(f"{source}: images are {describe_shape(got)}; '{data_name}' images are "
                        f"{describe_shape(want)}")


def score_points(s: Source) -> dict:
    """A 2D toy run's mode count (the one `points` metric)."""
    if s.recipe is None:
        raise UserError("metric 'modes' needs a run (a 2D toy generator), not a samples file")
    t = time.time()
    res = evaluate_modes(s.recipe, s.data_override or s.cfg.data.name, s.n, s.seed, s.drs)
    return {"provenance": {"source": str(s.path), "checkpoint": s.info["path"], "step": s.info["step"],
                           "ema": s.info["ema"], "n": s.n, "seed": s.seed,
                           "sampler": "discriminator rejection sampling" if s.drs else "G", **(s.drs or {})},
            "data": res["mixture"], "modes": res, "seconds": {"modes": round(time.time() - t, 2)}}


# ---------------------------------------------------------------------------------------------- the metrics


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


@metric("parzen", "samples", True, "parzen:    {mean:.1f} +- {se:.1f} nats (sigma {sigma:.3f}, {n_samples} samples, "
        "{n_test} test images)")
def parzen(s: Source) -> dict:
    return {**evaluate_parzen(s.pixels, s.data_name),
            "samples": "float in [0, 1]" if s.floats is not None else "uint8 / 255"}


@metric("nearest", "samples", None, "nearest:   copies {copies:.3f} (share of samples nearer a training image than 99% "
        "of the {n_test} test images are); median distance {samples_median:.3f} against the test images' "
        "{test_median:.3f} (ratio {ratio:.3f}, {n_train} training images)")
def nearest(s: Source) -> dict:
    from .nearest import memorisation

    # the images the run trained on (its own split: the 2014 GAN's train[0:50000]); a samples file: the train split
    train_name, train_split = (s.cfg.data.name, s.cfg.data.split) if s.recipe is not None and not s.data_override \
        else (s.data_name, "train")
    train_x = load_data(train_name, train_split).x
    return {**memorisation(s.pixels, train_x, load_data(s.data_name, "test").x),
            "train": f"{train_name} {train_split}", "test": f"{s.data_name} test"}


def needs_run(name: str, what: str, ok):
    """A check: metric `name` needs a run for which ok(recipe, cfg) holds (`what` says which)."""
    def check(s: Source) -> None:
        if s.recipe is None:
            raise UserError(f"metric '{name}' needs a run, not a samples file")
        if not ok(s.recipe, s.cfg):
            raise UserError(f"metric '{name}' needs {what}")
    return check


@metric("elbo", "samples", True, "elbo:      {elbo:.2f} nats per image on {n} test images",
        check=needs_run("elbo", "a VAE run (recipe vae)", lambda r, c: c.model.recipe == "vae"))
def elbo(s: Source) -> dict:
    from ..recipes.vae import evaluate_elbo

    return {**evaluate_elbo(s.recipe, load_data(s.data_name, "test").x, seed=s.seed), "data": f"{s.data_name} test"}


@metric("cas", "samples", True, "cas:       {cas:.4f} (classifier trained on {n_generated} generated, tested on real); "
        "same classifier on {n_real} real images: {real_data_accuracy:.4f}",
        check=needs_run("cas", "a conditional run (a recipe with num_classes > 0, e.g. cgan-mnist)",
                        lambda r, c: getattr(r, "conditional", False)))
def cas(s: Source) -> dict:
    from .cas import classification_accuracy_score

    test, train = load_data(s.data_name, "test"), load_data(s.data_name, "train")
    return {**classification_accuracy_score(s.recipe, test.x, test.y, n=s.n, seed=s.seed, real=(train.x, train.y)),
            "data": f"{s.data_name} test"}


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


metric("modes", "points", True, _fmt_modes)(None)  # computed by score_points: it goes alone
