"""Builders of the image-to-image networks by name (registry kind "translation-net"), from the config's model section.

A builder takes (model config, input shape (C, H, W), output channels) and returns a network initialised as the
authors' `init_type=normal`: conv weights ~ N(0, 0.02), BatchNorm gains ~ N(1, 0.02), biases 0.
  unet          Pix2Pix's U-Net (model.unet_depth levels, 0 = as many as the size allows), model.width_g = ngf
  resnet-cycle  CycleGAN's ResNet generator with model.n_blocks residual blocks
  patchgan      the PatchGAN discriminator with model.patch_layers stride-2 layers, model.width_d = ndf
"""

from __future__ import annotations

from ..registry import register
from .dcgan import dcgan_init_
from .patchgan import PatchDiscriminator
from .resnet import CycleResNetGenerator
from .unet import UNetGenerator


def auto_depth(h: int, w: int, most: int = 8) -> int:
    """The most U-Net levels the size allows (both sides divisible by 2^depth), at most 8 (the authors' unet_256)."""
    d = 0
    while d < most and h % 2 ** (d + 1) == 0 and w % 2 ** (d + 1) == 0:
        d += 1
    return d


def _init(net):
    dcgan_init_(net)
    return net


@register("translation-net", "unet")
def unet(m, in_shape, out_ch):
    c, h, w = in_shape
    return _init(UNetGenerator(c, out_ch, m.unet_depth or auto_depth(h, w), (h, w), m.width_g or 64, m.norm,
                               m.g_dropout))


@register("translation-net", "resnet-cycle")
def resnet_cycle(m, in_shape, out_ch):
    c, h, w = in_shape
    return _init(CycleResNetGenerator(c, out_ch, (h, w), m.width_g or 64, m.n_blocks, m.norm, m.g_dropout))


@register("translation-net", "patchgan")
def patchgan(m, in_shape, out_ch=1):
    return _init(PatchDiscriminator(in_shape[0], m.width_d or 64, m.patch_layers, m.norm))
