"""curves.png: losses, mean D outputs and the Parzen monitor over training, read from metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: Path) -> list[dict]:
    rows = []
    if Path(path).is_file():
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a half-written last line after a crash
    return rows


def plot_curves(metrics_path: Path, out: Path, title: str = "") -> Path | None:
    rows = read_metrics(metrics_path)
    train = [r for r in rows if "loss/D/total" in r]
    if not train:
        return None
    monitor = [r for r in rows if "parzen/monitor" in r]
    n_panels = 3 if monitor else 2
    fig, axes = plt.subplots(1, n_panels, figsize=(5.2 * n_panels, 3.8))
    steps = [r["step"] for r in train]
    ax = axes[0]
    for key in sorted({k for r in train for k in r if k.startswith("loss/")}):
        if key.endswith("/total") and sum(1 for k in train[0] if k.startswith(key.rsplit("/", 1)[0])) <= 2:
            continue  # with a single term, the total repeats it
        ax.plot(steps, [r.get(key, float("nan")) for r in train], label=key, lw=1)
    ax.set(xlabel="step (G updates)", ylabel="loss", title="Losses")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    if "D(x)" in train[-1]:
        ax.plot(steps, [r.get("D(x)", float("nan")) for r in train], label="mean D(x) (real)", color="tab:blue")
        ax.plot(steps, [r.get("D(G(z))", float("nan")) for r in train], label="mean D(G(z)) (fake)", color="tab:red")
        ax.axhline(0.5, color="gray", ls="--", lw=1, label="1/2 (equilibrium)")
        ax.set(xlabel="step (G updates)", ylabel="D output (probability, dropout on)", title="Discriminator outputs",
               ylim=(0, 1))
    else:
        ax.plot(steps, [r.get("critic(x)", float("nan")) for r in train], label="mean critic(x) (real)", color="tab:blue")
        ax.plot(steps, [r.get("critic(G(z))", float("nan")) for r in train], label="mean critic(G(z)) (fake)",
                color="tab:red")
        ax.set(xlabel="step (G updates)", ylabel="critic score", title="Critic outputs")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if monitor:
        ax = axes[2]
        ax.plot([r["step"] for r in monitor], [r["parzen/monitor"] for r in monitor], "o-", ms=3, color="tab:green",
                label="Parzen LL on validation digits")
        ax.set(xlabel="step (G updates)", ylabel="nats", title="Parzen monitor (cheap, higher is better)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out
