"""The metrics row every `train.log_every` steps: each loss term's and statistic's mean since the last row (over
every rank), learning rates, speed; a loss that is no longer finite stops the run before it checkpoints."""

from __future__ import annotations

import math

from .. import checkpoint as ckpt
from ..errors import Diverged
from .base import EVERY, Hook


class MetricsRow(Hook):
    ranks = EVERY  # the means are an all-reduce over the ranks

    def __call__(self, loop, ranks=None) -> dict:
        st, meter = loop.state, loop.meter
        row = {**loop.when(), **meter.means(loop.dist),
               "img/s": meter.count * loop.cfg.train.batch_size * loop.draws / meter.seconds()}
        for name, grp in st.groups.items():
            row[f"lr/{name}"] = grp.optimizer.param_groups[0]["lr"]
        if loop.cfg.optim.name == "sgd":
            row["momentum"] = next(iter(st.groups.values())).optimizer.param_groups[0]["momentum"]
        bad = [key for key, v in row.items() if key.startswith("loss/") and not math.isfinite(v)]
        if bad:  # diverged: stop before writing a poisoned checkpoint over good ones
            raise Diverged(f"training diverged: {', '.join(bad)} not finite by step {st.step}; last good "
                           f"checkpoint: {ckpt.latest_checkpoint(loop.run) or 'none'} (try a lower learning rate)")
        loop.progress.show(row, st.groups)
        if loop.cfg.train.max_minutes > 0:  # a time budget: the bar ends where the budget will stop the run
            loop.progress.end_at(self.budget_end(loop, row["time"]))
        meter.reset()
        return row

    @staticmethod
    def budget_end(loop, wall: float) -> int:
        """The step the time budget will stop at, at this invocation's pace so far."""
        st = loop.state
        left = max(0.0, 60.0 * loop.cfg.train.max_minutes - wall)
        return min(loop.total, st.step + int(left * (st.step - loop.step0) / max(st.wall() - st.elapsed, 1e-9)))
