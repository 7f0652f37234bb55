"""The loop's side jobs, one per file, each a public class with an interval and a declared rank policy (base.py).

A user's own side job is a Hook subclass, or a function through `Every(n, fn)`; pass it to the loop's
`train(..., hooks=[...])`. It touches no loop code.
"""

from .artefacts import Artefacts
from .base import EVERY, MAIN, Every, Hook, Hooks, eval_mode
from .best import Best
from .checkpoint import Checkpoint
from .evaluation import Evaluation, Evaluator
from .metrics_row import MetricsRow
from .parzen import ParzenMonitor, monitor_data, parzen_monitor
from .preview import CollapseWatch, Preview

__all__ = ["Artefacts", "Best", "Checkpoint", "CollapseWatch", "EVERY", "Evaluation", "Evaluator", "Every", "Hook",
           "Hooks", "MAIN", "MetricsRow", "ParzenMonitor", "Preview", "eval_mode", "monitor_data", "parzen_monitor"]
