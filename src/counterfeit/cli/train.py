"""Train a GAN from a preset or YAML file (or continue a run with --resume)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import config
from ..errors import UserError


def build_parser(p):
    p.add_argument("preset", help="preset name (see `counterfeit presets`), a YAML file, or a run dir with --resume")
    p.add_argument("--data", help="dataset name (embedded, mnist, fashion-mnist, cifar10) or a path")
    p.add_argument("--out", help="run dir (default runs/<preset name>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="train until this many G updates")
    g.add_argument("--epochs", type=int, help="train for this many epochs")
    p.add_argument("--seed", type=int)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr_d=0.05 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--allow-config-change", action="store_true", help="with --resume: accept a changed config")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def resolve_config(args) -> tuple[config.Config, Path]:
    src = Path(args.preset)
    overrides = list(args.overrides)
    if src.is_dir() and (src / "config.json").is_file():  # `train RUN_DIR --resume`
        try:
            d = json.loads((src / "config.json").read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{src / 'config.json'} is not valid JSON: {e}") from None
        out = Path(args.out) if args.out else src
    else:
        d = config.load_preset_dict(args.preset)
        out = None
    if args.data:
        overrides.append(f"data.name={args.data}")
        if args.data not in ("mnist",):
            overrides.append("data.split=train")  # the paper split exists for full MNIST only
    if args.steps is not None:
        overrides += [f"train.steps={args.steps}", "train.epochs=0"]
    if args.epochs is not None:
        overrides += [f"train.epochs={args.epochs}", "train.steps=0"]
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.device:
        overrides.append(f"train.device={args.device}")
    config.apply_overrides(d, overrides)
    cfg = config.from_dict(d)
    if out is None:
        out = Path(args.out) if args.out else Path("runs") / cfg.name
    return cfg, out


def run(args) -> int:
    cfg, out = resolve_config(args)
    if args.dry_run:
        print(cfg.to_json())
        _describe_nets(cfg)
        return 0
    from ..train import train

    res = train(cfg, out, resume=args.resume, allow_config_change=args.allow_config_change, progress=not args.no_progress)
    print(f"run dir: {res.run_dir}  (step {res.step}/{res.total_steps}, {res.wall_s:.0f} s)")
    for name in ("samples", "progress.gif", "curves.png", "metrics.jsonl", "checkpoints"):
        if (res.run_dir / name).exists():
            print(f"  {res.run_dir / name}")
    return 0


def _describe_nets(cfg) -> None:
    """Image-to-image recipes: the networks as built for the data (PatchGAN receptive field and logit grid)."""
    from ..recipes.translation import Translation
    from ..registry import get

    if not issubclass(get("recipe", cfg.model.recipe), Translation):
        return
    from ..data import load_data
    from ..recipes import build_recipe

    data = load_data(cfg.data.name, cfg.data.split, cfg.data.image_size, cfg.data.channels, cfg.data.limit)
    for line in build_recipe(cfg, data.shape, data).describe():
        print(line)
