"""Frames for the toy problems, drawn from the live networks during training.

1D (the paper's Figure 1): black dots p_data, green p_g, blue dashed D(x), and the z -> x mapping below.
2D (ring / grid mixtures): generated points over D's output field, real modes marked, modes captured and the
share of high-quality samples in the title.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..data.toy import GAUSS1D, toy_modes  # noqa: E402
from ..metrics.modes import toy_modes as count_modes  # noqa: E402


@torch.no_grad()
def d_output(recipe, x: torch.Tensor) -> torch.Tensor:
    """D's output at points x (N, D): a probability for BCE recipes, the raw critic score otherwise."""
    D = recipe.D
    was = D.training
    D.eval()
    xx = x.repeat_interleave(recipe.pack, 0) if recipe.pack > 1 else x  # a pack of identical points
    out = recipe._critic(xx, None)[0]
    D.train(was)
    return torch.sigmoid(out) if recipe.outputs_probability else out


def _density(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from scipy.stats import gaussian_kde

    if np.std(samples) < 1e-6:  # collapsed to a point: draw a spike
        out = np.zeros_like(grid)
        out[np.argmin(np.abs(grid - samples.mean()))] = 1.0 / (grid[1] - grid[0])
        return out
    return gaussian_kde(samples, bw_method=0.15)(grid)


@torch.no_grad()
def draw_1d(ax, recipe, G, z: torch.Tensor, title: str = "", xlim=(0.0, 8.0)) -> dict:
    """One panel of Figure 1 on `ax`; returns max |D(x) - 1/2| over the data's +-2 std support."""
    mean, std = GAUSS1D
    grid = np.linspace(*xlim, 400)
    real = mean + std * np.random.default_rng(0).standard_normal(20000)
    fake = G(z).squeeze(1).cpu().numpy()
    p_data, p_g = _density(real, grid), _density(fake, grid)
    d = d_output(recipe, torch.from_numpy(grid).float().unsqueeze(1)).cpu().numpy()
    top = max(p_data.max(), 1.0)
    ax.plot(grid[::6], p_data[::6] / top, ".", color="black", ms=3, label="p_data (data)")
    ax.plot(grid, np.clip(p_g / top, 0, 1.6), "-", color="green", lw=1.5, label="p_g (generator)")
    ax.plot(grid, d, "--", color="tab:blue", lw=1.5, label="D(x)")
    ax.axhline(0.5, color="gray", lw=0.6, ls=":")
    # the mapping x = G(z): z on a line below, arrows up to where G sends it
    zs = torch.linspace(float(z.min()), float(z.max()), 15).unsqueeze(1)
    xs = G(zs).squeeze(1).cpu().numpy()
    zline = (zs.squeeze(1).numpy() - zs.min().item()) / max(1e-9, zs.max().item() - zs.min().item())
    zline = xlim[0] + 0.25 * (xlim[1] - xlim[0]) + zline * 0.5 * (xlim[1] - xlim[0])
    for a, b in zip(zline, xs):
        ax.annotate("", xy=(b, -0.12), xytext=(a, -0.42), arrowprops=dict(arrowstyle="->", color="gray", lw=0.6))
    ax.plot([zline.min(), zline.max()], [-0.42, -0.42], color="black", lw=1)
    ax.plot(list(xlim), [-0.12, -0.12], color="black", lw=1)
    ax.text(xlim[0], -0.40, "z", fontsize=9)
    ax.text(xlim[0], -0.10, "x", fontsize=9)
    ax.set(xlim=xlim, ylim=(-0.5, 1.3), xlabel="x", title=title)
    sup = (grid >= mean - 2 * std) & (grid <= mean + 2 * std)
    return {"D_max_dev_from_half": float(np.abs(d[sup] - 0.5).max()), "D_mean_on_support": float(d[sup].mean())}


@torch.no_grad()
def draw_2d(ax, recipe, G, z: torch.Tensor, toy: str, title: str = "") -> dict:
    modes, std = toy_modes(toy)
    lim = float(modes.abs().max()) * 1.5 + 0.5
    n = 120
    ticks = torch.linspace(-lim, lim, n)
    gx, gy = torch.meshgrid(ticks, ticks, indexing="xy")
    field = d_output(recipe, torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).view(n, n).cpu().numpy()
    fake = G(z).cpu()
    stats = count_modes(fake, modes, std)
    cs = ax.contourf(gx.numpy(), gy.numpy(), field, levels=20, cmap="coolwarm", alpha=0.6)
    ax.scatter(fake[:, 0], fake[:, 1], s=2, color="green", alpha=0.5, label="G(z)")
    ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", color="black", label="modes of p_data")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xlabel="x1", ylabel="x2",
           title=f"{title}\nmodes {stats['modes_captured']}/{stats['num_modes']}, "
                 f"high quality {100 * stats['high_quality']:.0f}%")
    return {"cs": cs, **stats}


def toy_frame(path: Path, recipe, G, z: torch.Tensor, data_name: str, step: int) -> dict:
    """One training frame for a toy run; returns the numbers worth logging."""
    toy = data_name[4:]
    fig, ax = plt.subplots(figsize=(6.4, 4.2) if toy == "gauss1d" else (5.6, 5.4))
    if toy == "gauss1d":
        stats = draw_1d(ax, recipe, G, z, title=f"step {step}")
        ax.legend(loc="upper right", fontsize=8)
        row = {"toy/D_max_dev_from_half": stats["D_max_dev_from_half"]}
    else:
        stats = draw_2d(ax, recipe, G, z, toy, title=f"{data_name}, step {step}")
        fig.colorbar(stats.pop("cs"), ax=ax, label="D(x)" if recipe.outputs_probability else "critic(x)")
        ax.legend(loc="upper right", fontsize=8)
        row = {"toy/modes_captured": stats["modes_captured"], "toy/high_quality": stats["high_quality"]}
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return row
