"""Adversarial losses, all taking logits.

Sign convention, written once: D returns a logit l(x) = log(D(x) / (1 - D(x))); large means "real", and
D(x) = sigmoid(l(x)). Identities used below (stable for any l, no log(0)):
    -log D(x)       = softplus(-l)
    -log(1 - D(x))  = softplus(l)
Every function returns a scalar mean over the batch; minimising it is what the named player does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def d_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    # D maximises E[log D(x)] + E[log(1 - D(G(z)))]  <=>  minimises E[softplus(-l(x))] + E[softplus(l(G(z)))]
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    # G minimises E[log(1 - D(G(z)))] = -E[softplus(l)]: the paper's saturating game value; dL/dl = -sigmoid(l) -> 0 as D(G(z)) -> 0
    return -F.softplus(fake_logits).mean()


def g_nonsat(fake_logits: torch.Tensor) -> torch.Tensor:
    # G minimises -E[log D(G(z))] = E[softplus(-l)]: the non-saturating heuristic; dL/dl = -sigmoid(-l) -> -1 as D(G(z)) -> 0
    return F.softplus(-fake_logits).mean()


G_LOSSES = {"nonsat": g_nonsat, "minimax": g_minimax}


def d_real_fake_prob(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[float, float]:
    """Mean D(x) and D(G(z)) as probabilities, for logging."""
    return torch.sigmoid(real_logits).mean().item(), torch.sigmoid(fake_logits).mean().item()
