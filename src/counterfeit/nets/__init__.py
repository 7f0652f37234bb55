"""Networks only: no losses, no optimizers. Importing this package registers every network."""

from . import mlp  # noqa: F401  (registers "mlp", "maxout")
from .layers import Maxout  # noqa: F401
