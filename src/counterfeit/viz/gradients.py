"""Why the non-saturating loss: |dL/dl| of the generator's loss against D(G(z)), computed with autograd.

Early in training D rejects fakes, D(G(z)) -> 0. There log(1 - D(G(z))) saturates (its gradient vanishes like
D(G(z))), while -log D(G(z)) keeps a gradient near 1: same fixed point, much stronger signal.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from .. import losses as L  # noqa: E402


def generator_gradients(n: int = 400) -> dict:
    """D(G(z)) from ~0 to ~1 and |d loss / d logit| of both generator losses there (autograd, float64)."""
    d = torch.linspace(1e-4, 1 - 1e-4, n, dtype=torch.float64)
    out = {"D(G(z))": d}
    for name, fn in (("minimax", L.g_minimax), ("nonsat", L.g_nonsat)):
        logit = torch.log(d / (1 - d)).requires_grad_(True)
        fn(logit).backward()  # mean over n points: scale back to per-sample gradients
        out[name] = (logit.grad * n).abs().detach()
    return out


def plot_generator_gradients(path: Path) -> Path:
    g = generator_gradients()
    d = g["D(G(z))"].numpy()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(d, g["minimax"].numpy(), color="tab:red", label="saturating: log(1 - D(G(z)))")
    ax.plot(d, g["nonsat"].numpy(), color="tab:green", label="non-saturating: -log D(G(z))")
    ax.set(xlabel="D(G(z))  (0: D is sure the sample is fake)", ylabel="|d loss / d logit| per sample",
           title="Generator gradient vs how well D rejects its samples", xlim=(0, 1), ylim=(0, 1.05))
    ax.axvspan(0, 0.1, color="gray", alpha=0.15, label="early training: D(G(z)) near 0")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
