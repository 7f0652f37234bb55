"""Conditional GAN (Mirza & Osindero 2014): G and D both see the label; the loss is the GAN's.

G takes [z, embed(y)]; D takes the label as an extra input plane (model.d_cond=concat) or by projection
(model.d_cond=projection). `counterfeit sample RUN --label 7` draws that class.
"""

from __future__ import annotations

from ..errors import UserError
from ..registry import register
from .gan import GAN


@register("recipe", "cgan")
class CGAN(GAN):
    def __init__(self, cfg, shape, data=None):
        if cfg.model.num_classes <= 0 or cfg.model.d_cond not in ("concat", "projection"):
            raise UserError("recipe 'cgan' needs model.num_classes > 0 and model.d_cond concat or projection")
        super().__init__(cfg, shape, data)
