"""Write a run's single-file report.html (and its interpolation and gradient figures) and print its path."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError


def build_parser(p):
    p.add_argument("run", help="run dir")
    p.add_argument("--interpolation", choices=["slerp", "linear"], default="slerp")
    return p


def run(args) -> int:
    from ..viz.gradients import plot_generator_gradients
    from ..viz.report import write_report

    run_dir = Path(args.run)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir} is not a run dir (no config.json)")
    plot_generator_gradients(run_dir / "gradients.png")
    from .. import checkpoint as ckpt

    if ckpt.latest_checkpoint(run_dir) is not None:
        from ..sampling import load_generator

        recipe, cfg, _ = load_generator(run_dir)
        noise = hasattr(recipe, "sample_z")  # image-to-image runs: the preview grids and curves are their pictures
        if noise and not cfg.data.name.startswith("toy:"):
            from ..viz.interpolate import interpolation_grid

            interpolation_grid(recipe, run_dir / "interpolation.png", mode=args.interpolation,
                               per_class=recipe.conditional)
        elif noise and cfg.data.name != "toy:gauss1d" and cfg.model.z_dim == 2 and not recipe.conditional:
            from ..viz.toy import latent_map

            latent_map(recipe, run_dir / "latent-map.png", cfg.data.name[4:])
    print(write_report(run_dir))
    return 0
