"""The preview: G's samples on the fixed noise as a grid in samples/ (a 2-D scatter frame for toy data) every
`train.sample_every` steps, and the collapse watch on them."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..viz.grid import save_grid
from .base import Hook, eval_mode


class CollapseWatch:
    """The spread of G's samples over the fixed preview noise (the per-pixel standard deviation across the grid, in
    [0, 1] pixel units, averaged over pixels), logged as `samples/spread` with each preview, and one warning when G
    has collapsed: the spread below a tenth of the largest the run has had (G draws nearly one image), or below half
    of it at two previews in a row (G draws one kind of image). That is how the 2014 GAN fails on some draws: its
    sigmoid outputs run into their flat tails, no gradient reaches G and the samples freeze; such a run does not come
    back. The thresholds are checked against healthy and collapsed runs in bench/results/quickstart-seeds.json. Only a
    loss of spread that training gained counts: most Gs start near zero spread (their first samples are all alike), and
    the step-0 preview of one that starts wide (batch norm over the noise: ssgan's G) is not a level the run has to
    keep, so it is logged and not tracked."""

    GAINED = 0.05  # spread a run must have reached before a loss of it counts
    FROZEN = 0.1  # below this share of the best: nearly one image
    LOW, LOW_PREVIEWS = 0.5, 2  # below this share of the best at this many previews in a row: one kind of image
    STARTED = 0.25  # a quarter into the run, a spread under this share of the data's own: it never got going

    def __init__(self, metrics: Path | None = None, data_spread: float | None = None, by_step: int | None = None):
        """metrics: a resumed run's metrics.jsonl (its spreads so far). data_spread: the real images' own spread
        over as many images, and by_step the step from which a run still under STARTED of it is told so."""
        self.best, self.lows, self.warned = 0.0, 0, False
        self.data_spread, self.by_step = data_spread, by_step
        if metrics is not None and metrics.is_file():  # resumed: the spreads the run had before
            for line in metrics.read_text().splitlines():
                if '"samples/spread"' in line:
                    row = json.loads(line)
                    self._track(row["samples/spread"], row["step"])

    @staticmethod
    def spread(x: torch.Tensor) -> float:
        """Per-pixel standard deviation across the samples x (N, ...) in [0, 1], averaged over pixels."""
        return float(x.flatten(1).std(0).mean()) if len(x) > 1 else 0.0

    def _track(self, spread: float, step: int) -> None:
        if step == 0:  # the untrained G: see the class's docstring
            return
        self.best = max(self.best, spread)
        self.lows = self.lows + 1 if self.best >= self.GAINED and spread < self.LOW * self.best else 0

    def __call__(self, imgs: torch.Tensor, step: int) -> tuple[float, str | None]:
        """The spread of a grid's images (N, C, H, W) uint8, and the warning, once, when the run has collapsed."""
        spread = self.spread(imgs.float() / 255.0)
        self._track(spread, step)
        if not self.warned and self.data_spread and self.by_step and step >= self.by_step and \
                self.best < self.STARTED * self.data_spread:
            self.warned = True
            return round(spread, 5), (f"warning: step {step}: G's samples are still nearly all alike (spread "
                                      f"{spread:.4f} over the fixed noise, the data's own {self.data_spread:.3f}): "
                                      "the run has not got going and rarely does; stop it and try another --seed, "
                                      "a lower learning rate or another preset")
        if self.warned or self.best < self.GAINED:
            return round(spread, 5), None
        if spread < self.FROZEN * self.best:
            what = "collapsed onto nearly one image"
        elif self.lows >= self.LOW_PREVIEWS:
            what = f"lost most of their variety ({self.lows} previews in a row under half the best spread)"
        else:
            return round(spread, 5), None
        self.warned = True
        return round(spread, 5), (f"warning: step {step}: G's samples have {what} (spread {spread:.4f} over the "
                                  f"fixed noise, down from {self.best:.3f}); such a run rarely recovers: stop it and "
                                  "try another --seed or a lower learning rate")


class Preview(Hook):
    """samples/step-XXXXXXXX.png from the fixed inputs with the sampling networks (EMA where kept) in eval mode; the
    collapse watch where G draws images from noise. Rank 0 alone."""

    on_signal = False
    at_start = True
    MIN_STEPS = 200  # the fewest steps after which a run whose samples are all still alike is told so

    def __init__(self, every: int, watch: bool):
        super().__init__(every)
        self.watch = CollapseWatch() if watch else None

    def start(self, loop) -> None:
        if self.watch is None:
            return
        n = len(next(iter(loop.state.fixed.values())))  # the preview's count of images
        real = CollapseWatch.spread(loop.data.x[:n].float() / 255.0)
        by_step = max(loop.total // 4, self.MIN_STEPS)  # a quarter into the run; a few-step smoke run is no verdict
        self.watch = CollapseWatch(loop.run / "metrics.jsonl" if loop.state.step else None, real, by_step)

    def __call__(self, loop, ranks=None) -> dict:
        st, step = loop.state, loop.state.step
        path = loop.run / "samples" / f"step-{step:08d}.png"
        row = loop.when()
        nets = st.nets_for_sampling()
        with eval_mode(st.recipe.nets.values(), st.ema.values()), torch.no_grad(), ckpt.writing(path):
            if loop.data.is_image:
                imgs, nrow = st.recipe.preview(st.fixed, nets)
                save_grid(imgs, path, nrow=nrow)
                if self.watch is not None:
                    row["samples/spread"], warning = self.watch(imgs, step)
                    if warning:
                        loop.progress.say(warning)
            else:
                from ..viz.toy import toy_frame

                row.update(toy_frame(path, st.recipe, nets["G"], st.fixed["z"], loop.cfg.data.name, step))
            loop.writer.image("samples", path, step)
        return row
