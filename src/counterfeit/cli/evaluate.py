"""Score a run (fresh samples from its generator) or an .npz of samples with offline metrics."""

from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint import OUTPUT, atomic_write
from ..metrics.evaluate import METRIC_ORDER


def build_parser(p):
    p.add_argument("source", help="run dir, checkpoint, or samples .npz")
    p.add_argument("--metrics", default=None, help=f"comma-separated: {', '.join(METRIC_ORDER)} (default: modes for "
                   "a 2D toy run, parzen otherwise)")
    p.add_argument("--data", help="reference dataset (default: the run's; mnist for .npz files)")
    p.add_argument("--n", type=int, default=10000, help="samples to draw from a run (a translation run: test pairs)")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], default="AtoB", help="translation runs: which way to score")
    p.add_argument("--net-mode", choices=["eval", "train"], default="eval",
                   help="translation runs: eval = BatchNorm running statistics, no dropout (default); train = batch "
                        "statistics and dropout on, as the authors' test.py without --eval")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here as JSON")
    p.add_argument("--features", choices=["classifier", "inception"], default=None,
                   help="feature network for fid/kid/is/pr: the bundled classifier of the dataset (default) or the "
                        "FID Inception-v3 (the inception extra's TorchScript, or --inception PATH)")
    p.add_argument("--inception", metavar="PATH", help="Inception-v3 weights file (pytorch-fid's "
                   "pt_inception-2015-12-05-6726825d.pth); implies --features inception; default $COUNTERFEIT_INCEPTION")
    p.add_argument("--inception-sha256", help="accept an Inception weights file with this sha256 instead of the known one")
    p.add_argument("--inception-compute", choices=["auto", "fp32", "bf16", "torchscript"], default="auto",
                   help="the inception extra's weights: counterfeit's port in bf16 where the CPU has it natively, "
                        "else fp32 (auto), or as named; torchscript runs the file's own graph (the reference, slower)")
    p.add_argument("--inception-resize", choices=["torch", "tf1"], default="torch",
                   help="the inception extra's resize to 299x299: torch's bilinear (default, as the wheel) or TF1's "
                        "resize_bilinear (as the TensorFlow FID code of Lucic et al.)")
    from .sample import add_rejection_args

    add_rejection_args(p)
    return p


def run(args) -> int:
    from ..metrics.evaluate import evaluate, format_results

    metrics = None if args.metrics is None else [m.strip() for m in args.metrics.split(",") if m.strip()]
    extractor = None
    if args.features == "inception" or args.inception:
        from ..metrics.inception import load_inception

        extractor = load_inception(args.inception, args.inception_sha256, args.inception_compute,
                                   args.inception_resize)
    drs = dict(fit_steps=args.drs_fit_steps, quantile=args.drs_quantile) if args.drs else None
    results = evaluate(args.source, metrics, data=args.data, n=args.n, seed=args.seed, drs=drs, extractor=extractor,
                       direction=args.direction, net_mode=args.net_mode)
    for line in format_results(results):
        print(line)
    if args.json:  # a unique temp name, fsync, rename: a full disk or a second writer leaves no partial file
        atomic_write(Path(args.json), json.dumps(results, indent=2).encode(), OUTPUT)
        print(f"wrote {args.json}")
    return 0
