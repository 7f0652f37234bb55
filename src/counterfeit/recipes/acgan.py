"""Auxiliary-classifier GAN (Odena et al. 2017): G is conditional; D has a second head that predicts the class.

D minimises the GAN loss plus the class cross-entropy on real and generated images; G minimises its GAN loss
plus the class cross-entropy of its samples under D's head (terms loss/D/cls, loss/G/cls).
"""

from __future__ import annotations

from ..errors import UserError
from ..registry import register
from .gan import GAN


@register("recipe", "acgan")
class ACGAN(GAN):
    def __init__(self, cfg, shape, data=None):
        if cfg.model.num_classes <= 0 or cfg.model.d_cond != "acgan":
            raise UserError("recipe 'acgan' needs model.num_classes > 0 and model.d_cond=acgan")
        super().__init__(cfg, shape, data)
