"""The original GAN (Goodfellow et al. 2014): BCE on logits, saturating or non-saturating G loss.

D's objective is d_scale * (BCE(1, D(x)) + BCE(0, D(G(z)))), with d_scale = 0.5 as in the authors' code.
In joint mode (the authors' configuration) D and G take their gradients from the same minibatch and the same
forward pass, dropout masks included; otherwise the loop alternates k D-steps and one G-step (Algorithm 1).
"""

from __future__ import annotations

import torch

from .. import losses as L
from ..errors import UserError
from ..registry import register
from .base import Losses, Recipe


@register("recipe", "gan")
class GAN(Recipe):
    supports_joint = True

    def __init__(self, cfg, shape, data=None):
        super().__init__(cfg, shape, data)
        if cfg.loss.g_loss not in L.G_LOSSES:
            raise UserError(f"unknown loss.g_loss '{cfg.loss.g_loss}' (known: {', '.join(L.G_LOSSES)})")
        self.g_loss = L.G_LOSSES[cfg.loss.g_loss]

    def _d_logits(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = real.shape[0]
        logits = self.D(torch.cat([real, fake]))  # (2B,) one pass, independent dropout masks per row
        return logits[:b], logits[b:]

    def d_losses(self, real, labels):
        with torch.no_grad():
            fake = self.G(self.sample_z(real.shape[0], real.device))  # (B, C, H, W)
        lr, lf = self._d_logits(real, fake)
        p_real, p_fake = L.d_real_fake_prob(lr.detach(), lf.detach())
        return Losses({"adv": self.cfg.loss.d_scale * L.d_bce(lr, lf)}, {"D(x)": p_real, "D(G(z))": p_fake})

    def g_losses(self, n, labels):
        device = next(self.G.parameters()).device
        lf = self.D(self.G(self.sample_z(n, device)))
        return Losses({"adv": self.g_loss(lf)})

    def joint_losses(self, real, labels):
        fake = self.G(self.sample_z(real.shape[0], real.device))
        lr, lf = self._d_logits(real, fake)
        p_real, p_fake = L.d_real_fake_prob(lr.detach(), lf.detach())
        d = Losses({"adv": self.cfg.loss.d_scale * L.d_bce(lr, lf)}, {"D(x)": p_real, "D(G(z))": p_fake})
        return d, Losses({"adv": self.g_loss(lf)})
