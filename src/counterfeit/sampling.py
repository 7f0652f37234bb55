"""Load a trained generator from a run dir or checkpoint and draw samples from it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from . import config as config_mod
from . import registry
from .data import to_uint8
from .errors import UserError
from .recipes import Recipe, build_recipe


def load_generator(run_or_ckpt: str | Path, nets: dict | None = None) -> tuple[Recipe, config_mod.Config, dict]:
    """The recipe of a run dir's latest checkpoint (or a checkpoint file) with its weights loaded: the moving
    average where the run kept one, every network in eval mode. Returns (recipe, config, {"path", "step", "ema"}).

    nets: {"G": module, "D": module} for a run trained on a caller's own networks that cannot be rebuilt from
    their class alone; the weights are loaded into these modules."""
    path = ckpt.resolve(run_or_ckpt)
    state = ckpt.safe_load(path)
    try:
        cfg = config_mod.from_dict(json.loads(state["config"]))
    except (json.JSONDecodeError, KeyError) as e:
        raise UserError(f"{path}: unreadable config inside checkpoint ({e})") from None
    named = {getattr(cfg.model, {"G": "generator", "D": "discriminator"}[k]): m for k, m in (nets or {}).items()}
    with registry.provided(named):
        recipe = build_recipe(cfg, tuple(state["shape"]), None)
    ema = state.get("ema", {})
    try:
        for name, net in recipe.nets.items():  # every network the recipe declares (a critic, a VAE's encoder...)
            # sampling uses the moving average of a network's weights where the run kept one
            net.load_state_dict(ema.get(name, state["nets"][name]))
            net.eval()
        recipe.load_state_dict(state.get("recipe", {}))
    except (RuntimeError, KeyError) as e:
        detail = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        first = next((ln for ln in detail[1:] if ln.startswith(("size mismatch", "Missing", "Unexpected"))),
                     detail[0] if detail else repr(e))
        raise UserError(f"{path}: weights do not fit its config ({len(detail) - 1 or 1} problem(s); "
                        f"{first[:300]})") from None
    recipe.step = int(state["step"])  # schedules (instance noise) at the point training stopped
    return recipe, cfg, {"path": str(path), "step": int(state["step"]), "ema": bool(ema)}


class StopRequested(Exception):
    """A stop (SIGINT / SIGTERM) was asked while samples were being drawn or featurised: the work is abandoned."""


@torch.no_grad()
def generate(recipe: Recipe, n: int, seed: int = 0, batch: int = 500, labels: torch.Tensor | None = None,
             as_uint8: bool = True, G=None, device="cpu", part: tuple[int, int] | None = None,
             stop=None) -> torch.Tensor:
    """n samples (N, C, H, W): uint8, or float in [0, 1] for likelihood estimates on continuous pixels.

    part=(rank, world): only this rank's contiguous share, samples [n*rank//world, n*(rank+1)//world) of the same
    n (every rank draws all the noise, which is cheap, and runs G on its own rows): the shares of all ranks, in rank
    order, are the samples one process would make."""
    if n <= 0:
        raise UserError(f"--n must be positive, got {n}")
    lo, hi = (0, n) if part is None else (n * part[0] // part[1], n * (part[0] + 1) // part[1])
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch):
        if stop is not None and stop():  # asked between batches: the same draws as ever until then
            raise StopRequested
        m = min(batch, n - i)
        z = recipe.sample_z(m, generator=gen)
        y = labels[i : i + m] if labels is not None else recipe.sample_labels(m, generator=gen)
        a, b = max(lo, i) - i, min(hi, i + m) - i  # this rank's rows of the batch
        if a >= b:
            continue
        z, y = z[a:b].to(device), None if y is None else y[a:b].to(device)
        x = recipe.generate(z, y, G=G).cpu()
        out.append(as_output(x, recipe.cfg.data.range, as_uint8))
    if not out:  # more ranks than samples
        return generate(recipe, 1, seed, batch, labels, as_uint8, G, device, stop=stop)[:0]
    return torch.cat(out)


def as_output(x: torch.Tensor, range_: str, as_uint8: bool) -> torch.Tensor:
    """G's output in the nets' range -> uint8 images, or float in [0, 1] (toy data: unchanged)."""
    if as_uint8:
        return to_uint8(x, range_)
    return ((x + 1) / 2 if range_ == "pm1" else x).float()


def save_npz(images: torch.Tensor, path: Path, **extra: torch.Tensor) -> None:
    """uint8 (N, C, H, W) -> .npz holding `images` (N, H, W, C); toy points (N, 2) -> `points` float32; extra arrays
    (an encoder's `z`) beside them as float32; atomically (a unique temp name in the same folder, fsync, rename), so
    two writers never share a temp file."""
    import io

    buf = io.BytesIO()
    more = {k: v.float().cpu().numpy() for k, v in extra.items()}
    if images.dim() == 2:
        np.savez_compressed(buf, points=images.float().cpu().numpy(), **more)
    else:
        np.savez_compressed(buf, images=images.permute(0, 2, 3, 1).cpu().numpy(), **more)
    ckpt.atomic_write(Path(path), buf.getbuffer(), ckpt.OUTPUT)
