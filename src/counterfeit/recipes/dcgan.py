"""DCGAN (Radford et al. 2016; and the TensorFlow tutorial's variant): the GAN loss on convolutional networks.

The loss is the original GAN's (BCE on logits, non-saturating G); what makes it DCGAN is the architecture and
optimiser its presets name (dcgan-g/dcgan-d or tf-dcgan-g/tf-dcgan-d, Adam), and D's objective summed over real
and fake (d_scale 1), as both reference codes do.
"""

from __future__ import annotations

from ..registry import register
from .gan import GAN


@register("recipe", "dcgan")
class DCGAN(GAN):
    pass
