"""Networks only: no losses, no optimizers. Importing this package registers every network."""

from . import dcgan, mlp, resnet, sngan, toy, translation, vae  # noqa: F401  (registers the networks)
from .layers import Maxout  # noqa: F401
