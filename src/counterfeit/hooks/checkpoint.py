"""The periodic checkpoint (every `train.checkpoint_every` steps and at the end), refused when a weight or buffer
is no longer finite, so a poisoned state never replaces a good one."""

from __future__ import annotations

import functools

from .. import checkpoint as ckpt
from ..errors import Diverged
from .base import EVERY, Hook


class Checkpoint(Hook):
    ranks = EVERY  # every rank checks its weights and syncs its buffers; rank 0 writes
    rank_states = True

    def __init__(self, every: int, keep: int):
        super().__init__(every)
        self.keep = keep

    def __call__(self, loop, ranks=None) -> None:
        st, d = loop.state, loop.dist
        loop.writer.flush()
        bad = st.non_finite()
        if d.max_over_ranks([float(bool(bad))])[0]:  # every rank stops, whichever found it
            raise Diverged(f"training diverged: non-finite weights or buffers in {', '.join(bad) or 'another rank'} at "
                           f"step {st.step}; last good checkpoint: {ckpt.latest_checkpoint(loop.run) or 'none'} "
                           "(try a lower learning rate)")
        if d.on:
            st.sync_buffers()
        d.run_on_rank0(functools.partial(self.write, loop, ranks))

    def write(self, loop, ranks) -> None:
        ckpt.atomic_save(loop.checkpoint_state(ranks)(), ckpt.checkpoint_path(loop.run, loop.state.step))
        ckpt.prune(loop.run, self.keep)
