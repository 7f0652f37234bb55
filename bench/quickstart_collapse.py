"""Why the README's main job (`quickstart`, the 2014 GAN on the embedded digits) sometimes collapses: a diagnosis.

    python -m bench.quickstart_collapse [--steps 4500] [--every 500] [--masks both|16] [--set KEY=VALUE ...]

Trains `quickstart` (seed 0) twice, alone and one after the other: with the dropout masks as shipped (fp32
uniforms) and with the 16-bit masks of bench/dropout_ab.py (tried for issue 16, reverted: with them seed 0
collapsed). At every checkpoint it reads, on 500 fixed noise vectors:
  alive     the share of each G ReLU layer's units active for at least one z (dead ReLUs would freeze G);
  spread    the per-pixel standard deviation of G's samples over z, averaged over pixels (0 = one image for all z);
  saturated the share of G's output pre-activations beyond |8| (sigmoid'(8) = 3e-4: no gradient flows back);
  |a|       their mean magnitude; D(x), D(G(z)) from the training log;
  preview_spread, warned  the training loop's collapse watch (hooks.CollapseWatch) on the run's own preview grid.
Results: bench/results/quickstart-collapse.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
from bench.dropout_ab import sixteen_bit_dropout  # noqa: E402
from bench.harness import machine  # noqa: E402

from counterfeit import config  # noqa: E402
from counterfeit.checkpoint import list_checkpoints  # noqa: E402
from counterfeit.nets import layers  # noqa: E402
from counterfeit.sampling import load_generator  # noqa: E402
from counterfeit.hooks import CollapseWatch  # noqa: E402
from counterfeit.loop import train  # noqa: E402


@torch.no_grad()
def probe(path: Path, watch: CollapseWatch) -> dict:
    recipe, _, info = load_generator(path)
    G = recipe.G.eval()
    imgs, _ = recipe.preview(recipe.preview_inputs(recipe.cfg.train.sample_grid ** 2, recipe.cfg.train.seed, "cpu"),
                             {"G": G})
    preview_spread, warning = watch(imgs, info["step"])
    z = recipe.sample_z(500, generator=torch.Generator().manual_seed(1))
    relu, pre = [], []
    linears = [m for m in G.modules() if isinstance(m, torch.nn.Linear)]
    hooks = [m.register_forward_hook(lambda m, i, o: relu.append((o > 0).any(0).float().mean()))
             for m in G.modules() if isinstance(m, torch.nn.ReLU)]
    hooks.append(linears[-1].register_forward_hook(lambda m, i, o: pre.append(o)))
    x = recipe.generate(z, None, G=G)
    for h in hooks:
        h.remove()
    a = pre[0]
    return {"alive": [round(float(r), 3) for r in relu], "spread": round(CollapseWatch.spread(x), 4),
            "saturated": round(float((a.abs() > 8).float().mean()), 3), "|a|": round(float(a.abs().mean()), 2),
            "preview_spread": preview_spread, "warned": warning is not None}


def run(steps: int, every: int, seed: int, sets: list[str]) -> list[dict]:
    cfg = config.load_config("quickstart", [f"train.steps={steps}", "train.epochs=0", f"train.checkpoint_every={every}",
                                            "train.keep_checkpoints=0", f"train.log_every={every}",
                                            f"train.seed={seed}", *sets])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        train(cfg, out, progress=False)
        log = {r["step"]: r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "D(x)" in r}
        rows, watch = [], CollapseWatch(None)
        for step, path in list_checkpoints(out):
            r = {"step": step, **probe(path, watch)}
            if step in log:
                r.update({k: round(log[step][k], 3) for k in ("D(x)", "D(G(z))")})
            rows.append(r)
            print(r, flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4500)
    p.add_argument("--every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--masks", choices=["both", "16"], default="both", help="16: the 16-bit masks' run alone")
    p.add_argument("--set", action="append", default=[], help="a config override for both runs (what-if)")
    p.add_argument("--result", default=str(HERE / "results" / "quickstart-collapse.json"))
    args = p.parse_args(argv)
    shipped = layers.Dropout.forward
    res = {"about": __doc__.split("\n\n")[2].strip(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "python -m bench.quickstart_collapse " + " ".join(argv if argv is not None else sys.argv[1:]),
           "overrides": args.set, "runs": {}}
    try:
        variants = (("fp32-uniform masks (as shipped)", shipped), ("16-bit masks (reverted)", sixteen_bit_dropout))
        for name, forward in variants[1:] if args.masks == "16" else variants:
            print(name, flush=True)
            layers.Dropout.forward = forward
            res["runs"][name] = run(args.steps, args.every, args.seed, args.set)
    finally:
        layers.Dropout.forward = shipped
    Path(args.result).write_text(json.dumps(res, indent=1) + "\n")
    print("wrote", args.result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
