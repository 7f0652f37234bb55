"""Hinge loss (Lim & Ye; Miyato et al. 2018), used with spectral normalisation in SNGAN.

Paper settings (preset sngan-cifar10): spectrally normalised D, Adam 2e-4 betas (0, 0.9), 5 D steps.
"""

from __future__ import annotations

from .. import losses as L
from ..registry import register
from .base import NoiseGAN


@register("recipe", "hinge")
class Hinge(NoiseGAN):
    def d_adv(self, real_out, fake_out):
        return L.d_hinge(real_out, fake_out)

    def g_adv(self, fake_out):
        return L.g_hinge(fake_out)
