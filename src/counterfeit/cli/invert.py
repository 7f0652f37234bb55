"""Map real images to z and back with a run's encoder (an encoder run, or BiGAN / ALI): x -> E(x) -> G(E(x))."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def build_parser(p):
    p.add_argument("run", help="run dir or checkpoint with an encoder (`counterfeit train encoder --from RUN`, bigan)")
    p.add_argument("--input", required=True, help="a folder of images, an .npz of uint8 `images` (N, H, W, C), or "
                                                  "one image file, of the run's size")
    p.add_argument("--out", required=True, help="FILE.npz (the reconstructions as `images` and their codes as `z`), "
                                                "or a folder (one PNG reconstruction per input, named as the input)")
    return p


def run(args) -> int:
    from ..checkpoint import OUTPUT, writing
    from ..data.translation import read_inputs
    from ..metrics.inference import encoded, reconstructed
    from ..sampling import load_generator, save_npz
    from .sample import refuse_taken, write_pngs

    from ..api import no_encoder

    recipe, cfg, info = load_generator(args.run)
    if not hasattr(recipe, "encode"):
        raise UserError(f"{info['path']}: {no_encoder(recipe, args.run)}")
    out = Path(args.out)
    if out.suffix != ".npz" and out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file: --out takes FILE.npz or a folder")
    refuse_taken(out)
    x, names = read_inputs(args.input, recipe.shape[0])
    if tuple(x.shape[1:]) != tuple(recipe.shape):
        raise UserError(f"{args.input}: images are {tuple(x.shape[1:])} (C, H, W), the run's are {tuple(recipe.shape)}")
    rec = reconstructed(recipe, x)
    if out.suffix == ".npz":
        with writing(out, OUTPUT):
            save_npz(rec, out, z=encoded(recipe, x))
    else:
        write_pngs(rec, names, out)
    print(f"{len(rec)} images -> z ({cfg.model.z_dim}-d) -> G with {info['path']} (step {info['step']}) -> {out}")
    return 0
