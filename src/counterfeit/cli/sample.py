"""Draw samples from a trained generator into an .npz (uint8 `images`, (N, H, W, C)) or a folder of PNGs."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..errors import UserError


def build_parser(p):
    p.add_argument("run", help="run dir (latest checkpoint) or checkpoint file")
    p.add_argument("--n", type=int, default=64, help="number of samples")
    p.add_argument("--out", required=True, help="FILE.npz, or a folder for one PNG per sample")
    p.add_argument("--label", type=int, help="class to sample (conditional recipes)")
    p.add_argument("--seed", type=int, default=0)
    return p


def run(args) -> int:
    from ..sampling import generate, load_generator, save_npz

    recipe, cfg, info = load_generator(args.run)
    labels = None
    if args.label is not None:
        if not getattr(recipe, "conditional", False):
            raise UserError(f"--label needs a conditional recipe; '{cfg.model.recipe}' is unconditional")
        if not 0 <= args.label < recipe.num_classes:
            raise UserError(f"--label must be in 0..{recipe.num_classes - 1}, got {args.label}")
        import torch

        labels = torch.full((args.n,), args.label, dtype=torch.long)
    images = generate(recipe, args.n, seed=args.seed, labels=labels)
    out = Path(args.out)
    if out.suffix == ".npz":
        if out.exists():
            raise UserError(f"{out} exists; refusing to overwrite it")
        save_npz(images, out)
    else:
        if out.exists() and any(out.iterdir()):
            raise UserError(f"{out} exists and is not empty; refusing to overwrite it")
        out.mkdir(parents=True, exist_ok=True)
        a = images.permute(0, 2, 3, 1).numpy()
        for i, img in enumerate(a):
            Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(out / f"{i:06d}.png")
    print(f"{args.n} samples from {info['path']} (step {info['step']}) -> {out}")
    return 0
