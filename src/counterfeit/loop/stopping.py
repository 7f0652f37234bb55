"""When a run stops early: SIGINT / SIGTERM, the time budget (train.max_minutes) and patience (train.patience),
agreed by every rank in one all-reduce so that all of them stop after the same step."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass

from .. import dist as dist_mod


class SecondSignal(KeyboardInterrupt):
    """A second SIGINT / SIGTERM: stop at once (its number says which exit code: 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """SIGINT / SIGTERM ask the loop to stop at the end of the current step (a checkpoint is written there); a second
    signal stops at once. Installed only in the main thread (signal handlers cannot be set elsewhere).

    Under torchrun (second_stops=False) a second signal is ignored: Ctrl-C reaches the workers both from the terminal
    and from torchrun, which passes its own signal on as it shuts down (and kills what is still running 30 s later),
    so the second one must not cut the checkpoint short."""

    def __init__(self, second_stops: bool = True):
        self.signum: int | None = None
        self.second_stops = second_stops
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            if self.second_stops:
                raise SecondSignal(signum)  # the second signal: now
            return
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            # a stopped torchrun worker keeps ignoring the signals until it has left (torchrun's follows)
            signal.signal(s, signal.SIG_IGN if self.signum is not None and not self.second_stops else h)
        return False


@dataclass
class Stop:
    """What every rank agreed after a step: stop now (a signal, the budget or a stall), and why, in words."""

    now: bool = False
    signum: int | None = None
    why: str | None = None  # the budget or patience, said on rank 0 once the step's hooks ran


@dataclass
class Stopping:
    """The early-stop rules of one run."""

    max_minutes: float
    patience: int
    signals: StopSignals
    dist: dist_mod.Dist

    def check(self, st, best, total: int) -> Stop:
        """After a step: read this step's signal once (one handled later counts at the next step, so every rank runs
        the same hooks and collectives), then take each flag's maximum over the ranks."""
        over = self.max_minutes > 0 and st.wall() >= 60.0 * self.max_minutes
        stalled = self.patience > 0 and best is not None and best.stale(st.step) >= self.patience
        signum = self.signals.signum
        if self.dist.on:
            sig, over, stalled = self.dist.max_over_ranks([float(signum or 0), float(over), float(stalled)])
            signum = int(sig) or None
            self.signals.signum = self.signals.signum or signum
        if signum is None and not (over or stalled):
            return Stop()
        why = None
        if signum is None and st.step < total and self.dist.main:
            why = f"time budget of {self.max_minutes:g} min reached" if over else \
                f"no better {best.key} for {self.patience} steps (train.patience)"
        return Stop(True, signum, why)
