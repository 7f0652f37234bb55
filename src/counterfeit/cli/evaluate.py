"""Score a run (fresh samples from its generator) or an .npz of samples with offline metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..errors import UserError

METRICS = ["parzen", "fid", "kid", "is", "pr", "classes", "elbo", "cas", "modes"]


def build_parser(p):
    p.add_argument("source", help="run dir, checkpoint, or samples .npz")
    p.add_argument("--metrics", default=None, help=f"comma-separated: {', '.join(METRICS)} (default: modes for a "
                   "2D toy run, parzen otherwise)")
    p.add_argument("--data", help="reference dataset (default: the run's; mnist for .npz files)")
    p.add_argument("--n", type=int, default=10000, help="samples to draw from a run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here as JSON")
    p.add_argument("--features", choices=["classifier", "inception"], default=None,
                   help="feature network for fid/kid/is/pr: the bundled classifier of the dataset (default) or the "
                        "FID Inception-v3 from a local weights file")
    p.add_argument("--inception", metavar="PATH", help="Inception-v3 weights file (pytorch-fid's "
                   "pt_inception-2015-12-05-6726825d.pth); implies --features inception; default $COUNTERFEIT_INCEPTION")
    p.add_argument("--inception-sha256", help="accept an Inception weights file with this sha256 instead of the known one")
    from .sample import add_rejection_args

    add_rejection_args(p)
    return p


def evaluate_parzen(samples: torch.Tensor, data_name: str) -> dict:
    """The 2014 protocol: sigma from logspace(-1, 0, 10) on 1,000 validation images, scored on the test set."""
    from ..data import load_data
    from ..metrics.parzen import parzen_evaluate

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
    from ..metrics.modes import toy_modes
    from ..sampling import generate

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


def run(args) -> int:
    from ..sampling import load_generator

    src = Path(args.source)
    loaded = None  # (recipe, cfg, info) of a run, loaded once
    if args.metrics is None:  # the default follows the config the checkpoint carries
        loaded = None if src.suffix == ".npz" else load_generator(src)
        args.metrics = "modes" if loaded and loaded[1].data.name.startswith("toy:") else "parzen"
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none)'} (known: {', '.join(METRICS)})")
    if "modes" in names:  # 2D points, not images: the image metrics do not apply
        if len(names) > 1:
            raise UserError(f"metric 'modes' scores 2D toy runs and goes alone (asked for {', '.join(names)})")
        if src.suffix == ".npz":
            raise UserError("metric 'modes' needs a run (a 2D toy generator), not a samples file")
        recipe, cfg, info = loaded or load_generator(src)
        drs = dict(fit_steps=args.drs_fit_steps, quantile=args.drs_quantile) if args.drs else None
        t = time.time()
        res = evaluate_modes(recipe, args.data or cfg.data.name, args.n, args.seed, drs)
        results = {"provenance": {"source": str(src), "checkpoint": info["path"], "step": info["step"],
                                  "ema": info["ema"], "n": args.n, "seed": args.seed,
                                  "sampler": "discriminator rejection sampling" if drs else "G", **(drs or {})},
                   "data": res["mixture"], "modes": res, "seconds": {"modes": round(time.time() - t, 2)}}
        return _emit(results, args.json)
    prov: dict = {"source": str(src)}
    floats = None
    if src.suffix == ".npz":
        from ..data import _load_npz

        if not src.is_file():
            raise UserError(f"samples file not found: {src}")
        if args.drs:
            raise UserError("--drs needs a run (its generator and discriminator), not a samples file")
        samples = _load_npz(src)
        data_name = args.data or "mnist"
        prov.update(samples="uint8 from file", n=len(samples))
    else:
        from ..data import to_uint8
        from ..sampling import generate

        recipe, cfg, info = loaded or load_generator(src)
        if cfg.data.name.startswith("toy:"):
            raise UserError(f"'{cfg.data.name}' is a toy run of points, not images: score it with --metrics modes "
                            f"(2D mixtures), not {', '.join(names)}")
        from ..metrics.evaluate import reference_name

        data_name = reference_name(args.data or cfg.data.name)  # the embedded digits are scored as MNIST
        if args.drs:
            from ..rejection import generate_rejected

            floats, prov["rejection"] = generate_rejected(recipe, args.n, seed=args.seed, fit_steps=args.drs_fit_steps,
                                                          quantile=args.drs_quantile, as_uint8=False, progress=True)
        elif "parzen" in names:  # continuous pixels in [0, 1], as the paper scored them; uint8 derived from them
            floats = generate(recipe, args.n, seed=args.seed, as_uint8=False)
        if floats is not None:
            samples = to_uint8(floats, "01")  # floats are in [0, 1] whatever the nets' range
        else:
            samples = generate(recipe, args.n, seed=args.seed)  # uint8, as a user's samples file would hold
        prov.update(checkpoint=info["path"], step=info["step"], ema=info["ema"], n=args.n, seed=args.seed)
    results: dict = {"provenance": prov, "data": data_name, "seconds": {}}
    if "parzen" in names:
        t = time.time()
        results["parzen"] = evaluate_parzen(floats if floats is not None else samples, data_name)
        results["parzen"]["samples"] = "float in [0, 1]" if floats is not None else "uint8 / 255"
        results["seconds"]["parzen"] = round(time.time() - t, 2)
    if "elbo" in names:
        if src.suffix == ".npz" or cfg.model.recipe != "vae":
            raise UserError("metric 'elbo' needs a VAE run (recipe vae)")
        from ..data import load_data
        from ..recipes.vae import evaluate_elbo

        t = time.time()
        results["elbo"] = {**evaluate_elbo(recipe, load_data(data_name, "test").x, seed=args.seed),
                           "data": f"{data_name} test"}
        results["seconds"]["elbo"] = round(time.time() - t, 2)
        print(f"elbo:      {results['elbo']['elbo']:.2f} nats per image on {results['elbo']['n']} test images")
    if "cas" in names:
        if src.suffix == ".npz" or not recipe.conditional:
            raise UserError("metric 'cas' needs a conditional run (a recipe with num_classes > 0, e.g. cgan-mnist)")
        from ..data import load_data
        from ..metrics.cas import classification_accuracy_score

        t = time.time()
        test, train = load_data(data_name, "test"), load_data(data_name, "train")
        results["cas"] = {**classification_accuracy_score(recipe, test.x, test.y, n=args.n, seed=args.seed,
                                                          real=(train.x, train.y)), "data": f"{data_name} test"}
        results["seconds"]["cas"] = round(time.time() - t, 2)
        c = results["cas"]
        print(f"cas:       {c['cas']:.4f} (classifier trained on {c['n_generated']} generated, tested on real); "
              f"same classifier on {c['n_real']} real images: {c['real_data_accuracy']:.4f}")
    feature_metrics = [m for m in names if m not in ("parzen", "elbo", "cas")]
    if feature_metrics:
        from ..metrics.evaluate import evaluate_images

        extractor = None
        if args.features == "inception" or args.inception:
            from ..metrics.inception import load_inception

            extractor = load_inception(args.inception, args.inception_sha256)
        r = evaluate_images(samples, data_name, feature_metrics, extractor=extractor, seed=args.seed)
        results["provenance"].update(r.pop("provenance"))
        results["seconds"].update(r.pop("seconds"))
        results.update(r)
    return _emit(results, args.json)


def _emit(results: dict, json_path: str | None) -> int:
    _print(results)
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))
        print(f"wrote {json_path}")
    return 0


def _print(r: dict) -> None:
    if "modes" in r:
        m = r["modes"]
        print(f"modes:     {m['modes_captured']}/{m['num_modes']} captured (>= {m['min_count']} high-quality samples "
              f"each), high quality {m['high_quality']:.1%} (within 3 std = {3 * m['std']:g} of a mode), "
              f"{m['n']} samples")
        print("per mode:  high-quality samples on each mode" + (", the grid as plotted (top row: largest x2)"
                                                                 if m["num_modes"] == 25 else ""))
        counts = m["per_mode"]
        if m["num_modes"] == 25:  # grid modes are listed x1-major: mode 5a + b sits at (x1_a, x2_b)
            for b in reversed(range(5)):
                print("           " + " ".join(f"{counts[5 * a + b]:6d}" for a in range(5)))
        else:
            print("           " + " ".join(f"{c:6d}" for c in counts))
    if "parzen" in r:
        p = r["parzen"]
        print(f"parzen:    {p['mean']:.1f} +- {p['se']:.1f} nats (sigma {p['sigma']:.3f}, {p['n_samples']} samples, "
              f"{p['n_test']} test images)")
    if "fid" in r:
        f = r["fid"]
        print(f"fid:       {f['fid']:.3f} (95% CI {f['ci95'][0]:.3f}..{f['ci95'][1]:.3f})")
    if "kid" in r:
        print(f"kid:       {r['kid']['kid']:.5f} +- {r['kid']['kid_std']:.5f}")
    if "is" in r:
        print(f"is:        {r['is']['is']:.3f} +- {r['is']['is_std']:.3f}")
    if "pr" in r:
        p = r["pr"]
        print(f"precision: {p['precision']:.3f}  recall: {p['recall']:.3f}  density: {p['density']:.3f}  "
              f"coverage: {p['coverage']:.3f} (k={p['k']})")
    if "classes" in r:
        c = r["classes"]
        print(f"classes:   {c['classes_covered']}/{c['num_classes']} covered, largest share {c['largest_class_share']:.3f}")
    if "extractor" in r.get("provenance", {}):
        pv = r["provenance"]
        print(f"features:  {pv['extractor']} (sha256 {pv['sha256'][:16]}...), real: {pv['real']}")
