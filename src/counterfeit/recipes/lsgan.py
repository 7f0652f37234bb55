"""Least-squares GAN (Mao et al. 2017), 0/1 targets: D regresses real to 1 and fake to 0, G pushes fakes to 1."""

from __future__ import annotations

from .. import losses as L
from ..registry import register
from .base import NoiseGAN


@register("recipe", "lsgan")
class LSGAN(NoiseGAN):
    def d_adv(self, real_out, fake_out):
        return L.d_least_squares(real_out, fake_out)

    def g_adv(self, fake_out):
        return L.g_least_squares(fake_out)
