"""Where G sends its noise on the 5x5 grid: for each run, the share of z in three radial bands (|z| < 1, 1-2, > 2
standard deviations) that lands on the 9 interior modes, on the 16 border modes, or off every mode (more than 3
std from the nearest mode: the bridges), from 200,000 draws of G's 2-D normal z.

    python -m bench.toy2d_latent RUN_DIR [RUN_DIR ...] [--result bench/results/toy2d_latent.json]

The runs are `bench/toy2d.py` run dirs (bench/_work/toy2d-grid25/*-s0 ... -s4 for the preset's benchmark seeds).
`counterfeit report RUN` draws the same map as a picture (latent-map.png).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
from bench.harness import machine  # noqa: E402

from counterfeit.data.toy import toy_modes  # noqa: E402
from counterfeit.errors import UserError  # noqa: E402
from counterfeit.metrics.modes import nearest_mode  # noqa: E402
from counterfeit.sampling import load_generator  # noqa: E402

BANDS = [(0.0, 1.0), (1.0, 2.0), (2.0, float("inf"))]


@torch.no_grad()
def bands(run: Path, n: int = 200_000) -> dict:
    recipe, cfg, _ = load_generator(run)
    if cfg.data.name != "toy:grid25" or cfg.model.z_dim != 2 or cfg.model.noise != "normal":
        raise UserError(f"{run}: needs a toy:grid25 run with 2-D normal z, not {cfg.data.name} with "
                        f"{cfg.model.z_dim}-D {cfg.model.noise} z")
    modes, std = toy_modes("grid25")
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(0))  # (n, 2)
    G = recipe.G.eval()
    x = torch.cat([G(c) for c in z.split(50_000)]).reshape(n, 2)
    idx, on = nearest_mode(x, modes, std)
    interior = torch.tensor([a in (1, 2, 3) and b in (1, 2, 3) for a in range(5) for b in range(5)])[idx]
    r = z.norm(dim=1)
    out = {}
    for lo, hi in BANDS:
        m = (r >= lo) & (r < hi)
        k = int(m.sum())
        out[f"|z| {lo:g}-{hi:g}"] = {"share_of_z": round(k / n, 4),
                                     "interior": round(int((m & on & interior).sum()) / k, 4),
                                     "border": round(int((m & on & ~interior).sum()) / k, 4),
                                     "off_mode": round(int((m & ~on).sum()) / k, 4)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--result", default=str(HERE / "results" / "toy2d_latent.json"))
    args = p.parse_args(argv)
    doc = {"about": __doc__.split("\n\n")[0], "runs": {}, "machine": machine(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "command": "python -m bench.toy2d_latent " + " ".join(args.runs)}
    for run in args.runs:
        try:
            doc["runs"][run] = bands(Path(run))
        except UserError as e:  # one line, exit 2, and the result file is left as it was
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(run, json.dumps(doc["runs"][run]), flush=True)
    Path(args.result).write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
