"""One file per GAN variant; each registers itself under its name."""

from . import acgan, cgan, cyclegan, dcgan, gan, hinge, lsgan, pix2pix, vae, wgan, wgan_gp  # noqa: F401
from .base import Losses, Recipe, build_recipe  # noqa: F401
