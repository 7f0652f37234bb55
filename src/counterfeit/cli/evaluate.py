"""Score a run (fresh samples from its generator) or an .npz of samples with offline metrics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..errors import UserError

METRICS = ["parzen"]


def build_parser(p):
    p.add_argument("source", help="run dir, checkpoint, or samples .npz")
    p.add_argument("--metrics", default="parzen", help=f"comma-separated: {', '.join(METRICS)}")
    p.add_argument("--data", help="reference dataset (default: the run's; mnist for .npz files)")
    p.add_argument("--n", type=int, default=10000, help="samples to draw from a run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here as JSON")
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


def run(args) -> int:
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise UserError(f"unknown metric(s) {', '.join(unknown) or '(none)'} (known: {', '.join(METRICS)})")
    src = Path(args.source)
    prov: dict = {"source": str(src)}
    if src.suffix == ".npz":
        from ..data import _load_npz

        samples = _load_npz(src) if src.is_file() else None
        if samples is None:
            raise UserError(f"samples file not found: {src}")
        data_name = args.data or "mnist"
        prov.update(samples="uint8 from file", n=len(samples))
    else:
        from ..sampling import generate, load_generator

        recipe, cfg, info = load_generator(src)
        data_name = args.data or cfg.data.name
        if data_name == "embedded":
            data_name = "mnist"  # the embedded digits are MNIST's; score on MNIST's validation/test
        samples = generate(recipe, args.n, seed=args.seed, as_uint8=False)  # continuous pixels, as the paper
        prov.update(checkpoint=info["path"], step=info["step"], n=args.n, seed=args.seed, samples="float in [0, 1]")
    results: dict = {"provenance": prov, "data": data_name}
    for m in names:
        t = time.time()
        if m == "parzen":
            results["parzen"] = evaluate_parzen(samples, data_name)
        results.setdefault("seconds", {})[m] = round(time.time() - t, 2)
    if "parzen" in results:
        r = results["parzen"]
        print(f"parzen: {r['mean']:.1f} +- {r['se']:.1f} nats (sigma {r['sigma']:.3f}, {r['n_samples']} samples, "
              f"{r['n_test']} test images)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return 0
