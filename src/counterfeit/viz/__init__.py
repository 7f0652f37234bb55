"""Pictures: sample grids, the training GIF, curves."""

from .grid import make_gif, make_grid, save_grid  # noqa: F401
