"""The hook contract: a side job of the loop with its own interval and a declared rank policy, and the one runner
that runs the due hooks after a step, gathers the ranks' state at most once per step and writes their rows."""

from __future__ import annotations

import contextlib
import functools

from .. import checkpoint as ckpt

MAIN = "main"  # rank 0 runs it, the other ranks wait for its outcome (and raise its error with it)
EVERY = "every"  # every rank runs it: it holds collectives of its own (a mean over ranks, sharded sampling)


class Hook:
    """A side job that runs every `every` steps and after the last one, and returns a metrics row (or None).

    Class attributes declare how it runs:
    - `ranks`: MAIN or EVERY (above);
    - `rank_states`: it needs every rank's random state (to write a checkpoint that resumes every rank): the runner
      gathers it once per step, from every rank, and passes it as `ranks` (None in one process);
    - `on_signal`: a stop asked by SIGINT / SIGTERM runs it even when the step is not one of its own. Slow hooks
      (a preview with the Parzen monitor, an evaluation) say False: torchrun kills its workers 30 s after passing
      a signal on, and the checkpoint must not wait for them;
    - `at_start`: it also runs once before the first step of a fresh run (the untrained generator's grid).
    """

    ranks = MAIN
    rank_states = False
    on_signal = True
    at_start = False

    def __init__(self, every: int):
        if every < 1:
            raise ValueError(f"a hook's interval is a count of steps >= 1, got {every}")
        self.every = every

    def due(self, step: int, total: int, signalled: bool = False) -> bool:
        return step % self.every == 0 or (step == total and (self.on_signal or not signalled))

    def start(self, loop) -> None:
        """Called on every rank once the state is restored, before the first step of this invocation."""

    def __call__(self, loop, ranks: list[dict] | None = None) -> dict | None:
        raise NotImplementedError


class Every(Hook):
    """A user's callback: fn(loop) every `every` steps (and after the last), on rank 0. What it returns is logged as
    a metrics row when it is a dict of numbers (with the step, epoch and time added); anything else is ignored."""

    def __init__(self, every: int, fn, on_signal: bool = False):
        super().__init__(every)
        self.fn, self.on_signal = fn, on_signal

    def __call__(self, loop, ranks=None) -> dict | None:
        out = self.fn(loop)
        return {**loop.when(), **out} if isinstance(out, dict) and out else None


class Hooks:
    """Runs the due hooks in order after a step, on every rank, so that every rank reaches the same collectives."""

    def __init__(self, hooks):
        self.hooks = list(hooks)

    def start(self, loop) -> None:
        for hook in self.hooks:
            hook.start(loop)

    def run(self, loop, signalled: bool = False, first: bool = False) -> None:
        """The hooks due at this step (first: those that run before the first step)."""
        st, d, ranks, gathered = loop.state, loop.dist, None, False
        for hook in self.hooks:
            if not (hook.at_start if first else hook.due(st.step, loop.total, signalled)):
                continue
            if hook.rank_states and d.on and not gathered:
                ranks, gathered = d.gather(st.rank_state(loop.device)), True
            if hook.ranks == MAIN:
                row = d.run_on_rank0(functools.partial(hook, loop, ranks), share=False)
            else:
                row = hook(loop, ranks)
            self.log(loop, row)

    @staticmethod
    def log(loop, row: dict | None) -> None:
        """Rank 0 writes the row (the others may hold none: rank 0 alone draws the preview); a full disk there stops
        every rank. Every rank calls this for every due hook, so the collectives stay in step."""
        loop.dist.run_on_rank0(functools.partial(write_row, loop, row))


def write_row(loop, row: dict | None) -> None:
    with ckpt.writing(loop.run / "metrics.jsonl"):
        loop.writer.log(row)


@contextlib.contextmanager
def eval_mode(*groups_of_modules):
    """Networks in eval mode (BatchNorm on running statistics, no dropout) for a preview or an evaluation."""
    mods = [m for g in groups_of_modules for m in g]
    was = [m.training for m in mods]
    for m in mods:
        m.eval()
    try:
        yield
    finally:
        for m, w in zip(mods, was):
            m.train(w)
