"""Draw samples from a trained generator into an .npz (uint8 `images`, (N, H, W, C); a 2D toy run's `points`, (N, 2)
float32) or a folder of PNGs."""

from __future__ import annotations

import shutil
from pathlib import Path

from PIL import Image

from ..checkpoint import umask
from ..errors import UserError


def build_parser(p):
    p.add_argument("run", help="run dir (latest checkpoint) or checkpoint file")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--out", required=True, help="FILE.npz, or a folder for one PNG per sample")
    p.add_argument("--label", type=int, help="class to sample (conditional recipes)")
    p.add_argument("--seed", type=int, default=0)
    add_rejection_args(p)
    return p


def add_rejection_args(p) -> None:
    p.add_argument("--drs", action="store_true",
                   help="discriminator rejection sampling (Azadi et al. 2019): refit D to the sampled G, keep samples "
                        "by D's density-ratio estimate (gan/dcgan/cgan/acgan recipes)")
    p.add_argument("--drs-quantile", type=float, default=0.5,
                   help="gamma as this quantile of F over a burn-in batch; higher keeps fewer samples (default 0.5)")
    p.add_argument("--drs-fit-steps", type=int, default=500, help="D steps against the sampled G before sampling")


def run(args) -> int:
    from ..sampling import generate, load_generator

    refuse_taken(Path(args.out))  # before minutes of sampling
    recipe, cfg, info = load_generator(args.run)
    if not hasattr(recipe, "sample_z"):
        raise UserError(f"{info['path']} is a '{cfg.model.recipe}' run: it translates images rather than sampling "
                        "from noise (use `counterfeit translate RUN --input ... --out ...`)")
    labels = None
    if args.label is not None:
        if not getattr(recipe, "conditional", False):
            raise UserError(f"--label needs a conditional recipe; '{cfg.model.recipe}' is unconditional")
        if not 0 <= args.label < recipe.num_classes:
            raise UserError(f"--label must be in 0..{recipe.num_classes - 1}, got {args.label}")
        import torch

        labels = torch.full((args.n,), args.label, dtype=torch.long)
    if args.drs:
        if labels is not None:
            raise UserError("--drs with --label is not supported: rejection keeps samples of every class")
        from ..rejection import generate_rejected

        images, drs = generate_rejected(recipe, args.n, seed=args.seed, fit_steps=args.drs_fit_steps,
                                        quantile=args.drs_quantile, progress=True)
        print(f"rejection sampling kept {drs['acceptance']:.1%} of {drs['seen']} samples")
    else:
        images = generate(recipe, args.n, seed=args.seed, labels=labels)
    out = Path(args.out)
    points = images.dim() == 2  # a 2D toy run: (N, 2) points, not images
    if points and out.suffix != ".npz":
        raise UserError(f"{info['path']} is a 2D toy run: its samples are points, not images; write them to an .npz "
                        "(key `points`, (N, 2) float32), or draw them with `counterfeit report RUN`")
    write_samples(images, out)
    print(f"{args.n} samples from {info['path']} (step {info['step']}) -> {out}")
    return 0


GRIDS = (".png", ".jpg", ".jpeg")  # an --out with one of these is one picture: the samples in a grid


def refuse_taken(out: Path) -> None:
    if out.suffix.lower() in (".npz", *GRIDS):
        if out.exists():
            raise UserError(f"{out} exists; refusing to overwrite it")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder; refusing to overwrite it")


def write_samples(images, out: Path) -> None:
    """images uint8 (N, C, H, W) (or toy points) to FILE.npz, a grid FILE.png, or a folder of PNGs; each written
    whole or not at all, and nothing that exists is overwritten."""
    from ..checkpoint import OUTPUT, atomic_write, writing
    from ..sampling import save_npz
    from ..viz.grid import make_grid, to_pil

    refuse_taken(out)
    if out.suffix.lower() in (".npz", *GRIDS):
        if out.suffix == ".npz":
            with writing(out, OUTPUT):
                save_npz(images, out)
            return
        import io

        buf = io.BytesIO()
        to_pil(make_grid(images), scale=2).save(buf, format="JPEG" if out.suffix.lower() != ".png" else "PNG")
        atomic_write(out, buf.getbuffer(), OUTPUT)
        return
    write_pngs(images, [f"{i:06d}" for i in range(len(images))], out)


def write_pngs(images, names: list[str], out: Path) -> None:
    """One PNG per image, out/NAME.png (a NAME may hold subfolders), written into a temp folder beside `out` that is
    renamed once every file is in: the folder holds all of them or none."""
    import tempfile

    from ..checkpoint import OUTPUT, writing

    with writing(out, OUTPUT):
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
        try:
            for name, img in zip(names, images.permute(0, 2, 3, 1).numpy()):
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(tmp / f"{name}.png")
            tmp.chmod(0o777 & ~umask())
            if out.exists():
                out.rmdir()  # empty (checked before)
            tmp.rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
