"""The run's pictures and page, rebuilt from what is on disk after a checkpoint: progress.gif from the preview
grids, curves.png from metrics.jsonl, report.html."""

from __future__ import annotations

import time

from .. import checkpoint as ckpt
from ..viz.curves import plot_curves
from ..viz.grid import make_gif
from ..viz.report import write_report
from .base import Hook


class Artefacts(Hook):
    """Rank 0. The three take seconds to rebuild: at most once per `min_interval_s`, and always at the last step."""

    def __init__(self, every: int, min_interval_s: float = 60.0):
        super().__init__(every)
        self.min_interval_s, self.refreshed = min_interval_s, 0.0

    def __call__(self, loop, ranks=None) -> None:
        if loop.state.step != loop.total and time.time() - self.refreshed <= self.min_interval_s:
            return None
        run, cfg = loop.run, loop.cfg
        with ckpt.writing(run / "progress.gif"):
            make_gif(sorted((run / "samples").glob("step-*.png")), run / "progress.gif")
        with ckpt.writing(run / "curves.png"):
            plot_curves(run / "metrics.jsonl", run / "curves.png", title=f"{cfg.name}: {cfg.model.recipe}")
        with ckpt.writing(run / "report.html"):
            write_report(run)
        self.refreshed = time.time()
        return None
