"""Adversarial losses, all taking logits (raw D outputs), and the penalties that regularise D.

Sign convention, written once: D returns a logit l(x) = log(D(x) / (1 - D(x))); large means "real", and
D(x) = sigmoid(l(x)). Identities used below (stable for any l, no log(0)):
    -log D(x)       = softplus(-l)
    -log(1 - D(x))  = softplus(l)
Critic losses (WGAN, hinge, least squares) read the same raw output l as a score, large = real.
Every function returns a scalar mean over the batch; minimising it is what the named player does.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


# ---------------------------------------------------------------------------------------------- BCE (2014)


def d_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    # D maximises E[log D(x)] + E[log(1 - D(G(z)))]  <=>  minimises E[softplus(-l(x))] + E[softplus(l(G(z)))]
    # real_label t < 1 (one-sided smoothing): the real term becomes BCE(t, l) = t softplus(-l) + (1 - t) softplus(l)
    real = real_label * F.softplus(-real_logits) + (1.0 - real_label) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def g_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    # G minimises E[log(1 - D(G(z)))] = -E[softplus(l)]: the paper's saturating game value; dL/dl = -sigmoid(l) -> 0 as D(G(z)) -> 0
    return -F.softplus(fake_logits).mean()


def g_nonsat(fake_logits: torch.Tensor) -> torch.Tensor:
    # G minimises -E[log D(G(z))] = E[softplus(-l)]: the non-saturating heuristic; dL/dl = -sigmoid(-l) -> -1 as D(G(z)) -> 0
    return F.softplus(-fake_logits).mean()


G_LOSSES = {"nonsat": g_nonsat, "minimax": g_minimax}


def d_real_fake_prob(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean D(x) and D(G(z)) as probabilities, for logging: 0-dim tensors where the logits are (the loop reads them
    back once per metrics row, not once per step)."""
    return torch.sigmoid(real_logits.detach()).mean(), torch.sigmoid(fake_logits.detach()).mean()


# ---------------------------------------------------------------------------------------------- LSGAN


def d_least_squares(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # LSGAN (Mao et al.), 0/1 targets: D minimises 1/2 E[(l(x) - 1)^2] + 1/2 E[l(G(z))^2]
    return 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean()


def g_least_squares(fake: torch.Tensor) -> torch.Tensor:
    # G minimises 1/2 E[(l(G(z)) - 1)^2]
    return 0.5 * (fake - 1.0).pow(2).mean()


# ---------------------------------------------------------------------------------------------- Wasserstein


def d_wasserstein(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # the critic maximises E[l(x)] - E[l(G(z))], an estimate of W1 when l is 1-Lipschitz
    return fake.mean() - real.mean()


def g_wasserstein(fake: torch.Tensor) -> torch.Tensor:
    # G minimises -E[l(G(z))] (also the generator loss of hinge GANs)
    return -fake.mean()


# ---------------------------------------------------------------------------------------------- hinge


def d_hinge(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # SNGAN / Geometric GAN: D minimises E[max(0, 1 - l(x))] + E[max(0, 1 + l(G(z)))]
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


g_hinge = g_wasserstein


# ---------------------------------------------------------------------------------------------- penalties


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    # WGAN-GP (Gulrajani et al.): E[(|grad_x l(x_hat)|_2 - 1)^2], x_hat = eps x + (1 - eps) G(z), eps ~ U[0, 1] per sample
    eps = torch.rand(real.shape[0], *([1] * (real.ndim - 1)), device=real.device, generator=generator)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1.0).pow(2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    # R1 (Mescheder et al. 2018): E[|grad_x l(x)|^2] on real data; the recipe weights it by gamma / 2
    x = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()
