"""WGAN-GP (Gulrajani et al. 2017): the Wasserstein critic with a gradient penalty instead of clipping.

Paper settings (preset wgan-gp-fashion): lambda = 10 on random interpolates, Adam 1e-4 betas (0, 0.9),
5 critic steps, no BatchNorm in the critic. The penalty term itself lives in Recipe (loss.gp_weight).
"""

from __future__ import annotations

from ..errors import UserError
from ..registry import register
from .wgan import WassersteinCritic


@register("recipe", "wgan-gp")
class WGANGP(WassersteinCritic):
    def __init__(self, cfg, shape, data=None):
        super().__init__(cfg, shape, data)
        if cfg.loss.gp_weight <= 0:
            raise UserError("recipe 'wgan-gp' needs loss.gp_weight > 0 (the paper: 10)")
