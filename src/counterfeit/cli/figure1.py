"""Train a GAN on a 1D Gaussian and draw the paper's Figure 1 (four panels) and an animation of the run."""

from __future__ import annotations

from pathlib import Path

from .. import config


def build_parser(p):
    p.add_argument("--out", default="runs/figure1", help="run dir (default runs/figure1)")
    p.add_argument("--steps", type=int, help="G updates (default: the figure1 preset's)")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args) -> int:
    from ..loop import train
    from ..viz.figure1 import figure1

    overrides = list(args.overrides)
    if args.steps:
        overrides += [f"train.steps={args.steps}", f"train.checkpoint_every={max(1, args.steps // 40)}",
                      f"train.sample_every={max(1, args.steps // 40)}"]
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    cfg = config.load_config("figure1", overrides)
    res = train(cfg, Path(args.out), progress=not args.no_progress)
    fig = figure1(res.run_dir)
    d = fig["d"]
    print(f"figure 1: {fig['png']}\nanimation: {res.run_dir / 'progress.gif'}\n"
          f"final D(x) on the data's support (mean +- 2 std): mean {d['D_mean_on_support']:.3f}, "
          f"largest |D(x) - 1/2| {d['D_max_dev_from_half']:.3f}")
    return 0
