"""Benchmark: modes captured and high-quality share on the 2D ring (8) and grid (25) mixtures, over 5 seeds.

    python -m bench.toy2d [--presets toy2d-gan,toy2d-pacgan4] [--seeds 5] [--drs]

Protocol of VEEGAN / PacGAN: after training, 2,500 samples from G; a sample is high quality when within 3 standard
deviations of its nearest mode (ring: std 0.01; grid: std 0.05); a mode is captured when at least 2,500 / (50 K)
high-quality samples fall on it (a fiftieth of a fair share: 2 for the grid, 6 for the ring; PacGAN's reference
code (MetricLogger in fjxmlzn/PacGAN) counts any mode with one high-quality sample: this count is stricter). Each
(preset, mixture, seed) is its own run, trained as the preset says; the final frame of seed 0 (samples over D's
output field) is saved to bench/results/toy2d/PRESET-MIXTURE.png (beside --result). Results: bench/results/toy2d.json.
With --drs, each run is also scored through discriminator rejection sampling (D refit to the sampled G for 500
steps, then samples kept by D's density-ratio estimate; see counterfeit.rejection): same training, other sampler.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit import config  # noqa: E402
from counterfeit.data.toy import toy_modes as mixture_modes  # noqa: E402
from counterfeit.metrics.modes import toy_modes  # noqa: E402
from counterfeit.rejection import generate_rejected  # noqa: E402
from counterfeit.sampling import generate, load_generator  # noqa: E402
from counterfeit.loop import train  # noqa: E402

PRESETS = ["toy2d-gan", "toy2d-pacgan4", "toy2d-noise", "toy2d-wgan-gp"]
MIXTURES = ["ring8", "grid25"]


def run_one(preset: str, mixture: str, seed: int, work: Path, extra: list[str], drs: bool = False,
            drs_quantile: float = 0.5) -> dict:
    cfg = config.load_config(preset, [f"data.name=toy:{mixture}", f"train.seed={seed}", *extra])
    out = work / f"{preset}-{mixture}-s{seed}"
    shutil.rmtree(out, ignore_errors=True)
    steps = cfg.train.steps
    cfg.train.sample_every = steps  # frames at the start and the end only: the benchmark measures, not draws
    cfg.train.checkpoint_every = steps
    t = time.time()
    train(cfg, out, progress=False)
    wall = time.time() - t
    recipe, _, info = load_generator(out)
    x = generate(recipe, 2500, seed=seed + 12345, as_uint8=False)
    modes, std = mixture_modes(mixture)
    r = toy_modes(x.reshape(len(x), 2), modes, std)
    frame = sorted((out / "samples").glob("step-*.png"))[-1]
    row = {"seed": seed, "modes_captured": r["modes_captured"], "num_modes": r["num_modes"],
           "high_quality": round(r["high_quality"], 4), "per_mode": r["per_mode"], "steps": steps,
           "train_s": round(wall, 1), "ema": info["ema"], "frame": frame}
    if drs:  # the same run, sampled through discriminator rejection (D refit to the sampled G first)
        t = time.time()
        xr, inf = generate_rejected(recipe, 2500, seed=seed + 12345, quantile=drs_quantile, as_uint8=False)
        rr = toy_modes(xr.reshape(len(xr), 2), modes, std)
        row["drs_frame"] = drs_figure(x.reshape(len(x), 2), xr.reshape(len(xr), 2), modes, std, r, rr,
                                      out / "samples-vs-drs.png", f"toy:{mixture}, {preset}, seed {seed}")
        row["drs"] = {"modes_captured": rr["modes_captured"], "high_quality": round(rr["high_quality"], 4),
                      "per_mode": rr["per_mode"],
                      "acceptance": inf["acceptance"], "quantile": drs_quantile, "fit_steps": inf["fit_steps"],
                      "seconds": round(time.time() - t, 1)}
    return row


def drs_figure(raw, kept, modes, std, r_raw, r_drs, path: Path, title: str) -> Path:
    """Two panels: G's samples as drawn, and those discriminator rejection sampling keeps, over the modes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.6), sharex=True, sharey=True)
    for ax, pts, r, name in ((axes[0], raw, r_raw, "samples of G"), (axes[1], kept, r_drs, "kept by DRS")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:green", alpha=0.5, label=name)
        ax.scatter(modes[:, 0], modes[:, 1], s=25, marker="x", c="k", label="modes of p_data")
        ax.set_title(f"{name}: modes {r['modes_captured']}/{r['num_modes']}, "
                     f"high quality {r['high_quality']:.0%}", fontsize=10)
        ax.set_xlabel("x1")
        ax.legend(loc="upper right", fontsize=7)
    axes[0].set_ylabel("x2")
    fig.suptitle(f"{title}: high quality = within 3 std ({3 * std:g}) of a mode")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _summary(runs: list[dict]) -> dict:
    n = len(runs)
    return {"modes_captured_mean": sum(r["modes_captured"] for r in runs) / n,
            "modes_captured_min": min(r["modes_captured"] for r in runs),
            "high_quality_mean": round(sum(r["high_quality"] for r in runs) / n, 4),
            "high_quality_min": min(r["high_quality"] for r in runs)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--mixtures", default=",".join(MIXTURES))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-list", default=None, help="probe these seeds only (comma list) instead of 0..seeds-1")
    p.add_argument("--set", action="append", default=[], help="extra overrides for every run (probes)")
    p.add_argument("--work", default=str(HERE / "_work" / "toy2d"))
    p.add_argument("--result", default=str(HERE / "results" / "toy2d.json"))
    p.add_argument("--drs", action="store_true", help="also score each run through discriminator rejection sampling")
    p.add_argument("--drs-quantile", type=float, default=0.5)
    args = p.parse_args(argv)
    result_path = Path(args.result)
    doc = json.loads(result_path.read_text()) if result_path.is_file() else {"runs": {}}
    doc["about"] = __doc__.split("\n\n", 2)[2].strip()
    doc["target"] = "best recipe: 8/8 ring modes, >= 24/25 grid modes, >= 90% high-quality samples (5 seeds)"
    for preset in args.presets.split(","):
        for mixture in args.mixtures.split(","):
            runs = []
            seeds = [int(s) for s in args.seed_list.split(",")] if args.seed_list else range(args.seeds)
            for seed in seeds:
                r = run_one(preset, mixture, seed, Path(args.work), args.set, args.drs, args.drs_quantile)
                frame, drs_frame = r.pop("frame"), r.pop("drs_frame", None)
                if seed == seeds[0]:  # the first seed's frames
                    png = Path(args.result).with_suffix("") / f"{preset}-{mixture}.png"  # beside the result file
                    png.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(frame, png)
                    if drs_frame is not None:
                        shutil.copyfile(drs_frame, png.with_name(f"{preset}-{mixture}-drs.png"))
                runs.append(r)
                print(json.dumps({"preset": preset, "mixture": mixture, **r}), flush=True)
            n = len(runs)
            key = f"{preset}/{mixture}" + (f" [{' '.join(args.set)}]" if args.set else "") + (
                f" seeds {args.seed_list}" if args.seed_list else "")
            doc["runs"][key] = {
                "preset": preset, "mixture": mixture, "overrides": args.set, "seeds": n,
                **_summary(runs),
                **({"drs": {**_summary([r["drs"] for r in runs]), "quantile": args.drs_quantile,
                            "acceptance_mean": round(sum(r["drs"]["acceptance"] for r in runs) / n, 4)}}
                   if args.drs else {}),
                "per_seed": runs, "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
                "command": f"python -m bench.toy2d --presets {preset} --mixtures {mixture} "
                           + (f"--seed-list {args.seed_list}" if args.seed_list else f"--seeds {n}")
                           + "".join(f" --set {s}" for s in args.set)
                           + (f" --drs --drs-quantile {args.drs_quantile:g}" if args.drs else ""),
            }
            result_path.parent.mkdir(parents=True, exist_ok=True)
            result_path.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
