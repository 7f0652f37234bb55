"""One file per GAN variant; each registers itself under its name."""

from . import (acgan, bigan, cgan, cyclegan, dcgan, gan, hinge, inference, lsgan, pix2pix, ssgan, vae,  # noqa: F401
               wgan, wgan_gp)
from .base import Losses, Recipe, build_recipe  # noqa: F401
