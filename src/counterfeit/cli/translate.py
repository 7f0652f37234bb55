"""Translate images with a trained Pix2Pix / CycleGAN run: a folder, an .npz of images or one image file."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def build_parser(p):
    p.add_argument("run", help="run dir (latest checkpoint) or checkpoint file of a pix2pix / cyclegan run")
    p.add_argument("--input", required=True, help="a folder of images, an .npz of uint8 `images` (N, H, W, C), or "
                                                  "one image file")
    p.add_argument("--out", required=True, help="FILE.npz, or a folder (one PNG per input, named as the input)")
    p.add_argument("--direction", choices=["AtoB", "BtoA"], default="AtoB",
                   help="AtoB (default) or BtoA (CycleGAN runs learn both)")
    p.add_argument("--net-mode", choices=["eval", "train"], default="eval",
                   help="eval = BatchNorm running statistics, no dropout (default); train = batch statistics and "
                        "dropout on, as the authors' test.py without --eval")
    p.add_argument("--seed", type=int, default=0, help="dropout's randomness with --net-mode train")
    return p


def run(args) -> int:
    from ..checkpoint import OUTPUT, writing
    from ..data import to_float
    from ..data.translation import read_inputs
    from ..metrics.translation import run_nets
    from ..recipes.translation import Translation
    from ..sampling import load_generator, save_npz
    from .sample import refuse_taken, write_pngs

    recipe, cfg, info = load_generator(args.run)
    if not isinstance(recipe, Translation):
        raise UserError(f"{info['path']} is a '{cfg.model.recipe}' run, not image-to-image: use `counterfeit sample`")
    recipe.check_direction(args.direction)
    out = Path(args.out)
    if out.suffix != ".npz" and out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file: --out takes FILE.npz or a folder")
    refuse_taken(out)
    x, names = read_inputs(args.input, recipe.in_channels(args.direction))
    recipe.check_size(*x.shape[2:], args.direction)
    recipe.set_net_mode(args.net_mode, args.seed)
    y = run_nets(lambda t: recipe.translate(t, args.direction), to_float(x, "pm1"))
    if out.suffix == ".npz":
        with writing(out, OUTPUT):
            save_npz(y, out)
    else:
        write_pngs(y, names, out)
    print(f"{len(y)} images {args.direction} with {info['path']} (step {info['step']}, {args.net_mode} mode) -> {out}")
    return 0
