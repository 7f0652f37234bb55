"""The Parzen monitor (the 2014 paper's model selection): G's samples scored on held-out images with the Parzen
window estimate over the paper's sigmas, at every preview; with train.select=parzen it keeps best.pt."""

from __future__ import annotations

import torch

from ..data import ImageData, load_data
from ..errors import UserError
from ..metrics.parzen import PAPER_SIGMAS, parzen_log_likelihoods
from .base import Hook, eval_mode
from .best import Best


def monitor_data(cfg) -> ImageData | None:
    """Validation images for the cheap Parzen monitor: MNIST's paper-valid split, else a test split, else none."""
    for split in (["paper-valid"] if cfg.data.split == "paper-train" else []) + ["test"]:
        try:
            d = load_data(cfg.data.name, split, cfg.data.image_size, cfg.data.channels)
            return d.subset(0, cfg.train.parzen_monitor_valid)
        except UserError:
            continue
    return None


@torch.no_grad()
def parzen_monitor(recipe, G, valid: ImageData, n: int, seed: int, range_: str, device) -> dict:
    """The monitor's row: the best mean log-likelihood over the paper's sigmas of n samples on `valid`."""
    gen = torch.Generator().manual_seed(seed)  # its own stream: the training's random state is untouched
    z = recipe.sample_z(n, generator=gen).to(device)
    y = recipe.sample_labels(len(z), generator=gen)
    fake = recipe.generate(z, None if y is None else y.to(device), G=G).float().cpu()
    if range_ == "pm1":
        fake = (fake + 1) / 2
    ll = parzen_log_likelihoods(fake, valid.x, PAPER_SIGMAS).mean(1)
    return {"parzen/monitor": float(ll.max()), "parzen/monitor_sigma": float(PAPER_SIGMAS[int(ll.argmax())])}


class ParzenMonitor(Hook):
    """Runs with the preview, on rank 0. `valid` is None on the other ranks (and where the data have no held-out
    split: then it logs nothing). With `selects` (train.select=parzen) it offers each score to `best` (rank 0's; None on
    the others), and every rank takes part in gathering the state that best.pt holds."""

    on_signal = False
    at_start = True

    def __init__(self, every: int, valid: ImageData | None, best: Best | None = None, selects: bool = False):
        super().__init__(every)
        self.valid, self.best = valid, best if selects else None
        self.rank_states = selects  # best.pt is a checkpoint of every rank: the same on every rank

    def __call__(self, loop, ranks=None) -> dict | None:
        if self.valid is None:
            return None
        st, t = loop.state, loop.cfg.train
        with eval_mode(st.recipe.nets.values(), st.ema.values()):
            scores = parzen_monitor(st.recipe, st.nets_for_sampling()["G"], self.valid, t.parzen_monitor_samples,
                                    t.seed * 7919 + st.step, loop.cfg.data.range, loop.device)
        row = {**loop.when(), **scores}
        if self.best is not None:
            self.best.offer(row["parzen/monitor"], st.step, loop.checkpoint_state(ranks),
                            {"sigma": row["parzen/monitor_sigma"], "samples": t.parzen_monitor_samples,
                             "valid": f"{self.valid.name} {len(self.valid)} images"})
            row["parzen/best"] = self.best.value
        return row
