"""The paper's Figure 1, drawn from the checkpoints of a real 1D training run.

Four panels: (a) the initial networks, (b) the step where D separated the distributions most, (c) halfway from
(b) to the end, (d) the final state, where D(x) should have flattened to about 1/2 on the data's support.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .. import checkpoint as ckpt  # noqa: E402
from .. import config as config_mod  # noqa: E402
from ..errors import UserError  # noqa: E402
from ..recipes import build_recipe  # noqa: E402
from .curves import read_metrics  # noqa: E402
from .toy import draw_1d  # noqa: E402


def figure1(run_dir: Path, out: Path | None = None) -> dict:
    run_dir = Path(run_dir)
    found = dict(ckpt.list_checkpoints(run_dir))
    if len(found) < 2:
        raise UserError(f"{run_dir} needs checkpoints along the run (train with train.keep_checkpoints=0)")
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "toy/D_max_dev_from_half" in r and r["step"] in found]
    if not rows:
        raise UserError(f"{run_dir} is not a 1D toy run (no toy/D_max_dev_from_half in metrics.jsonl)")
    dev = {r["step"]: r["toy/D_max_dev_from_half"] for r in rows}
    steps = sorted(found)
    first, last = steps[0], steps[-1]
    peak = max((s for s in steps if s not in (first, last)), key=lambda s: dev.get(s, -1), default=first)
    mid = min(steps, key=lambda s: abs(s - (peak + last) / 2))
    picks = [(first, "initial networks" if first == 0 else "early"), (peak, "D separates most"), (mid, "halfway to the end"), (last, "final")]
    state = ckpt.safe_load(found[last])
    cfg = config_mod.from_dict(json.loads(state["config"]))
    recipe = build_recipe(cfg, tuple(state["shape"]))
    z = recipe.sample_z(20000, generator=torch.Generator().manual_seed(0))
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2), sharey=True)
    result = {}
    for ax, letter, (step, what) in zip(axes, "abcd", picks):
        st = ckpt.safe_load(found[step])
        recipe.G.load_state_dict(st["nets"]["G"])
        recipe.D.load_state_dict(st["nets"]["D"])
        recipe.G.eval()
        stats = draw_1d(ax, recipe, recipe.G, z, title=f"({letter}) step {step}: {what}")
        result[letter] = {"step": step, **stats}
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("Generative adversarial nets, Figure 1 (drawn from a real run): p_data (black dots), "
                 "p_g (green), D(x) (blue dashed), x = G(z) (arrows)")
    fig.tight_layout()
    out = Path(out) if out else run_dir / "figure1.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    result["png"] = str(out)
    return result
