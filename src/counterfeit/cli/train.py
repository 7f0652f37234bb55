"""Train a GAN from a preset or YAML file (or continue a run with --resume)."""

from __future__ import annotations

import os
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
    p.add_argument("--from", dest="from_run", metavar="RUN", help="preset encoder: the trained run whose generator "
                   "the encoder learns to invert (its data, z and G come with it)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr_d=0.05 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--allow-config-change", action="store_true", help="with --resume: accept a changed config")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import a plugin module that registers its own nets or recipes (the run records it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--nproc", type=int, default=0, metavar="N",
                   help="train in N processes on this machine (torchrun --standalone: DDP, gloo on CPU, nccl on CUDA); "
                        "train.batch_size stays the global batch")
    p.add_argument("--max-restarts", type=int, default=0, metavar="K",
                   help="with --nproc: when a process dies, restart all of them up to K times; the run continues "
                        "from its last checkpoint")
    return p


def resolve_config(args) -> tuple[config.Config, Path]:
    """The Config and run dir this command names (a preset, a YAML file, or with --resume a run dir)."""
    from ..api import resolve

    sets = args.overrides + ([f"model.from_run={args.from_run}"] if args.from_run else [])
    if args.from_run and args.preset != "encoder" and not (Path(args.preset) / "config.json").is_file():
        from ..config import load_preset_dict

        if load_preset_dict(args.preset).get("model", {}).get("recipe") != "encoder":
            raise UserError(f"--from names the run an encoder inverts: it goes with the preset encoder, not "
                            f"'{args.preset}'")
    cfg = resolve(args.preset, steps=args.steps, epochs=args.epochs, seed=args.seed, overrides=sets,
                  device=args.device, data=args.data, imports=args.imports)
    src = Path(args.preset)
    run_dir = src if src.is_dir() and (src / "config.json").is_file() else None
    return cfg, Path(args.out) if args.out else (run_dir or Path("runs") / cfg.name)


def run(args) -> int:
    cfg, out = resolve_config(args)
    if args.dry_run:
        print(cfg.to_json(), flush=True)
        _describe_nets(cfg)
        return 0
    if args.nproc < 0 or args.max_restarts < 0:
        raise UserError("--nproc and --max-restarts take a count >= 0")
    if args.nproc > 0 and "WORLD_SIZE" not in os.environ:  # hand over to torchrun, which starts this command N times
        return _launch(args, cfg, out)
    from ..api import train_config

    res = train_config(cfg, out, resume=args.resume, allow_config_change=args.allow_config_change,
                       progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 says where the run is
        return 0
    print(f"run dir: {res.run_dir}  (step {res.step}/{res.total_steps}, {res.wall_s:.0f} s)")
    for name in ("samples", "progress.gif", "curves.png", "metrics.jsonl", "checkpoints"):
        if (res.run_dir / name).exists():
            print(f"  {res.run_dir / name}")
    return 0


def _describe_nets(cfg) -> None:
    """What `auto` settings resolve to on this machine, and for image-to-image recipes the networks as built for
    the data (PatchGAN receptive field and logit grid)."""
    import sys

    from ..data import image_shape, load_data
    from ..dist import resolve_device
    from ..errors import UserError
    from ..loop.setup import resolve_auto
    from ..recipes import build_recipe
    from ..recipes.translation import Translation
    from ..registry import get

    translation = issubclass(get("recipe", cfg.model.recipe), Translation)
    data, shape = None, None
    if not translation:
        try:  # a named dataset's shape is known without reading it; a folder's from its images
            shape = image_shape(cfg.data.name)
        except UserError as e:
            print(f"(what `auto` resolves to shows once the data can be read: {e})", file=sys.stderr)
            return
    if shape is None:
        data = load_data(cfg.data.name, cfg.data.split, cfg.data.image_size, cfg.data.channels, cfg.data.limit)
        shape = data.shape
    recipe = build_recipe(cfg, shape, data)
    precision, why, fmt = resolve_auto(cfg, recipe, resolve_device(cfg.train.device))
    print(f"on this machine: train.precision {cfg.train.precision} -> {precision} ({why}); "
          f"train.memory_format {cfg.train.memory_format} -> {fmt}", file=sys.stderr)
    if translation:
        for line in recipe.describe():
            print(line)


def _launch(args, cfg, out: Path) -> int:
    """`train ... --nproc N`: torchrun --standalone --nproc-per-node=N over this same command (without --nproc),
    after the checks that need no process group, so a bad config or --out is said once, before N processes start.
    The exit code is the workers' (2 bad input, 3 diverged, 130/143 signals)."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    from ..dist import resolve_device
    from ..loop import guard_run_dir
    from ..runtime import usable_cores

    resolve_device(cfg.train.device)
    guard_run_dir(out, args.resume)
    if cfg.train.batch_size % args.nproc:
        raise UserError(f"train.batch_size {cfg.train.batch_size} (the global batch) is not divisible by --nproc "
                        f"{args.nproc}")
    rest, skip = [], False
    for a in args.argv[args.argv.index("train") + 1:]:
        if skip:
            skip = False
        elif a in ("--nproc", "--max-restarts"):
            skip = True
        elif not a.startswith(("--nproc=", "--max-restarts=")):
            rest.append(a)
    if cfg.train.device == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # N processes share the cores (torchrun's default is one thread each)
        os.environ["OMP_NUM_THREADS"] = str(max(1, usable_cores() // args.nproc))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)  # its lifecycle notes; errors stay
    targs = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={args.nproc}",
                                          f"--max-restarts={args.max_restarts}", "-m", "counterfeit", "train", *rest])
    try:
        torchrun(targs)
    except ChildFailedError as e:
        codes = [f.exitcode for f in e.failures.values()]
        return next((c for c in codes if c > 0), 1)
    except SignalException as e:  # Ctrl-C / SIGTERM: the workers finished their step, checkpointed and said so
        return 128 + int(e.sigval)
    return 0
