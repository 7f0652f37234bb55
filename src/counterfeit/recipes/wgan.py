"""Wasserstein GAN (Arjovsky et al. 2017): a critic kept Lipschitz by clipping its weights to [-c, c].

Paper settings (preset wgan-fashion): c = 0.01, RMSprop 5e-5, 5 critic steps per G step.
"""

from __future__ import annotations

import torch

from .. import losses as L
from ..errors import UserError
from ..registry import register
from .base import NoiseGAN


class WassersteinCritic(NoiseGAN):
    """The Wasserstein losses alone; WGAN adds clipping, WGAN-GP a gradient penalty."""

    def d_adv(self, real_out, fake_out):
        return L.d_wasserstein(real_out, fake_out)

    def g_adv(self, fake_out):
        return L.g_wasserstein(fake_out)


@register("recipe", "wgan")
class WGAN(WassersteinCritic):
    def __init__(self, cfg, shape, data=None):
        super().__init__(cfg, shape, data)
        if cfg.loss.clip <= 0:
            raise UserError("recipe 'wgan' needs loss.clip > 0 (the paper: 0.01)")

    @torch.no_grad()
    def after_d_step(self):
        c = self.cfg.loss.clip
        for p in self.D.parameters():
            p.clamp_(-c, c)
