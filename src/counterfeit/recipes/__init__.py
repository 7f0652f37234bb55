"""One file per GAN variant; each registers itself under its name."""

from . import gan  # noqa: F401
from .base import Losses, Recipe, build_recipe  # noqa: F401
