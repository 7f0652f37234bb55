"""Networks only: no losses, no optimizers. Importing this package registers every network."""

from . import bigan, dcgan, inference, mlp, resnet, sngan, ssgan, toy, translation, vae  # noqa: F401  (registers the networks)
from .layers import Maxout  # noqa: F401
