"""The original GAN (Goodfellow et al. 2014): BCE on logits, saturating or non-saturating G loss.

D's objective is d_scale * (BCE(1, D(x)) + BCE(0, D(G(z)))), with d_scale = 0.5 as in the authors' code.
In joint mode (the authors' configuration) D and G take their gradients from the same minibatch and the same
forward pass, dropout masks included; otherwise the loop alternates k D-steps and one G-step (Algorithm 1).
"""

from __future__ import annotations

from .. import losses as L
from ..errors import UserError
from ..registry import register
from .base import NoiseGAN


@register("recipe", "gan")
class GAN(NoiseGAN):
    outputs_probability = True

    def __init__(self, cfg, shape, data=None):
        super().__init__(cfg, shape, data)
        if cfg.loss.g_loss not in L.G_LOSSES:
            raise UserError(f"unknown loss.g_loss '{cfg.loss.g_loss}' (known: {', '.join(L.G_LOSSES)})")
        self._g = L.G_LOSSES[cfg.loss.g_loss]

    def d_adv(self, real_out, fake_out):
        return self.cfg.loss.d_scale * L.d_bce(real_out, fake_out, self.cfg.loss.real_label)

    def g_adv(self, fake_out):
        return self._g(fake_out)
