"""counterfeit: train, evaluate and look inside Generative Adversarial Networks.

    import counterfeit as cf
    run = cf.train("quickstart", steps=2000)    # or cf.load("runs/quickstart")
    run.grid(64); run.evaluate(["fid", "kid"], n=5000)
"""

__version__ = "0.1.0"

from .api import Run, every, load, presets, train  # noqa: E402
from .config import Config, load_config  # noqa: E402
from .errors import Diverged, Interrupted, UserError  # noqa: E402
from .metrics.evaluate import evaluate  # noqa: E402

__all__ = ["Config", "Diverged", "Interrupted", "Run", "UserError", "evaluate", "every", "load", "load_config",
           "presets", "train"]
