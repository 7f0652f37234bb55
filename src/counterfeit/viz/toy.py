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
from ..metrics.modes import nearest_mode, toy_modes as count_modes  # noqa: E402


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


@torch.no_grad()
def latent_map(recipe, path: Path, toy: str, n: int = 401) -> dict:
    """Where G sends its noise, for 2-D z: each point of a z grid coloured by the mode G(z) lands on (white: off
    every mode, more than 3 std away), beside the modes drawn in the same colours with the share of z's
    probability mass that reaches each. A continuous G must cut the noise plane into one region per mode; the
    regions' borders are the bridges between modes, and a mode whose region is a sliver is about to be lost.

    Returns {"per_mode": mass reaching each mode (mixture order), "off_mode": the rest}: the expected shares of
    G's raw samples, from the grid (the normal's mass beyond 3.5 std is left out)."""
    if recipe.cfg.model.z_dim != 2 or recipe.conditional or recipe.cfg.model.noise not in ("uniform", "normal"):
        raise ValueError("the latent map needs an unconditional G with 2-D uniform or normal z")
    modes, std = toy_modes(toy)
    uniform = recipe.cfg.model.noise == "uniform"
    z, w, lim = _z_grid(n, uniform)
    G = recipe.G
    was = G.training
    G.eval()
    x = torch.cat([recipe.generate(c).reshape(len(c), -1) for c in z.split(20000)])  # (n*n, 2)
    G.train(was)
    idx, good = nearest_mode(x, modes, std)
    label = torch.where(good, idx, torch.full_like(idx, -1))  # (n*n,)
    share = torch.zeros(len(modes), dtype=torch.float64).index_add_(0, idx[label >= 0], w[label >= 0])
    off = float(w[label < 0].sum())
    _draw_latent_map(path, toy, modes, label, share, off, n, lim, uniform)
    return {"per_mode": share.tolist(), "off_mode": off}


def _z_grid(n: int, uniform: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """An n x n grid of z (n*n, 2), each cell's probability mass (n*n,) and the grid's half width."""
    if uniform:  # U[-sqrt(3), sqrt(3)]^2: flat density
        lim = 3.0 ** 0.5
        ticks = torch.linspace(-lim, lim, n, dtype=torch.float64)
        w1 = torch.ones(n, dtype=torch.float64)
    else:  # standard normal: cell masses from the normal's cdf, so the shares do not depend on the grid's spacing
        lim = 3.5
        ticks = torch.linspace(-lim, lim, n, dtype=torch.float64)
        half = (ticks[1] - ticks[0]) / 2
        normal = torch.distributions.Normal(0.0, 1.0)
        w1 = normal.cdf(ticks + half) - normal.cdf(ticks - half)
    w = (w1[:, None] * w1[None, :]).reshape(-1)  # (n*n,) mass of each cell, rows = z2, columns = z1
    z2, z1 = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], 1).float(), w / w.sum(), lim


def _draw_latent_map(path: Path, toy: str, modes, label, share, off: float, n: int, lim: float, uniform: bool):
    k = len(modes)
    colours = plt.get_cmap("tab20")(np.arange(20)).tolist() + plt.get_cmap("tab20b")(np.arange(20)).tolist()
    colours = np.array(colours[:k])
    img = np.ones((n * n, 4))
    img[label.numpy() >= 0] = colours[label.numpy()[label.numpy() >= 0]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 5.2))
    a.imshow(img.reshape(n, n, 4), origin="lower", extent=(-lim, lim, -lim, lim), interpolation="nearest")
    if not uniform:
        t = np.linspace(0, 2 * np.pi, 200)
        for r in (1, 2, 3):  # the normal's 1, 2, 3 std circles: 39%, 86%, 99% of z
            a.plot(r * np.cos(t), r * np.sin(t), color="black", lw=0.6, ls=":",
                   label="|z| = 1, 2, 3" if r == 1 else None)
        a.legend(loc="upper right", fontsize=8)
    a.set(xlabel="z1", ylabel="z2", title=f"noise z coloured by the mode G(z) lands on\n(white: off every mode, "
                                          f"{100 * off:.0f}% of z)")
    m = modes.numpy()
    b.scatter(m[:, 0], m[:, 1], s=40 + 4000 * share.numpy(), c=colours, edgecolors="black", label="modes of p_data")
    for (px, py), s in zip(m, share.tolist()):
        b.annotate(f"{100 * s:.1f}%", (px, py), textcoords="offset points", xytext=(0, -18 if k > 8 else -22),
                   ha="center", fontsize=7)
    pad = float(np.abs(m).max()) * 0.35 + 0.5
    b.set(xlim=(m[:, 0].min() - pad, m[:, 0].max() + pad), ylim=(m[:, 1].min() - pad, m[:, 1].max() + pad),
          aspect="equal", xlabel="x1", ylabel="x2",
          title=f"share of z reaching each mode (fair: {100 / k:.1f}%)")
    b.legend(loc="upper right", fontsize=8, markerscale=0.4)
    fig.suptitle(f"{toy}: where G sends its noise")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
