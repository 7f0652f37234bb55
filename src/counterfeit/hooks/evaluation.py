"""Evaluation during training every `train.eval_every` steps, with the bundled classifier, as `counterfeit evaluate`
scores a run; the first of fid/kid/is in `train.eval_metrics` keeps best.pt (train.select=eval)."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..errors import UserError
from .base import EVERY, Hook, eval_mode
from .best import Best


class Evaluator:
    """Made before anything is written, so that bad evaluation settings are refused first. On rank 0 (`main`) it
    holds the real split's features; the other ranks only make and featurise their share of the samples."""

    def __init__(self, cfg, run: Path, data, main: bool = True):
        from ..metrics.evaluate import names, real_features, reference_name, selectors, spec
        from ..metrics.features import load_extractor

        t = cfg.train
        if not data.is_image:
            raise UserError("train.eval_every: evaluation with a classifier needs an image dataset")
        self.metrics = list(t.eval_metrics)
        scored = [m for m in names() if spec(m).needs == "features"]
        unknown = [m for m in self.metrics if m not in scored]
        if unknown or not self.metrics:
            raise UserError(f"train.eval_metrics: {', '.join(unknown) or '(none)'} cannot be computed during "
                            f"training (these can: {', '.join(scored)})")
        can_select = selectors()
        picks = [m for m in self.metrics if m in can_select]
        selects = t.select == "eval"  # else the Parzen monitor keeps best.pt and these scores are only logged
        if selects and not picks:
            raise UserError(f"train.eval_metrics {self.metrics} has none of {sorted(can_select)} to pick the best step")
        self.ref = reference_name(cfg.data.name)
        if t.eval_extractor == "inception":  # the FID Inception of the inception extra
            from ..metrics.inception import load_inception

            self.ex = load_inception()
        else:  # fails now, with the reason, not at the first tick
            self.ex = load_extractor(t.eval_extractor or self.ref)
        # the real split's features, computed (or read from the cache) once and held for every tick, by rank 0 alone
        self.real = real_features(self.ex, self.ref) if main else None
        self.n, self.seed = t.eval_samples, t.seed
        self.best = None
        if selects and main:
            self.key, self.spec = picks[0], can_select[picks[0]]
            self.best = Best(run, self.key, not self.spec.higher_is_better)

    @torch.no_grad()
    def features(self, recipe, G, step: int, device, part=(0, 1), stop=None) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the tick's samples through the extractor (every rank calls it under torchrun).
        stop(): asked between batches; yes abandons the evaluation (sampling.StopRequested)."""
        from ..sampling import generate

        fake = generate(recipe, self.n, seed=self.seed * 7919 + step + 1, G=G, device=device, part=part,
                        stop=stop)  # own stream
        return self.ex(fake, stop=stop)

    def score(self, parts: list[tuple[torch.Tensor, torch.Tensor]], step: int, state_now) -> dict:
        """Rank 0: the scores of every rank's features (in rank order, the samples one process would make)."""
        from ..metrics.evaluate import flat_scores, score_features

        ff, fl = torch.cat([f for f, _ in parts]), torch.cat([g for _, g in parts])
        r = score_features(ff, fl, self.ref, self.metrics, self.ex, self.real, seed=self.seed, n_boot=0)
        row = {"step": step, **{f"eval/{k}": v for k, v in flat_scores(r).items()}}
        if self.best is not None:
            self.best.offer(self.spec.value(r), step, state_now, {"scores": flat_scores(r), "n_generated": self.n,
                                                                "provenance": r["provenance"]})
            row["eval/best_" + self.key] = self.best.value
        return row


class Evaluation(Hook):
    """Every rank makes and featurises its share of the samples; rank 0 scores them all and may keep best.pt."""

    ranks = EVERY
    rank_states = True  # best.pt is a checkpoint of every rank
    on_signal = False

    def __init__(self, every: int, evaluator: Evaluator):
        super().__init__(every)
        self.evaluator = evaluator

    def __call__(self, loop, ranks=None) -> dict | None:
        from ..sampling import StopRequested

        st, d = loop.state, loop.dist
        # a signal stops the evaluation between batches (a checkpoint must not wait minutes for it, nor torchrun's
        # 30 s grace run out); the ranks' shares differ in batches, so they agree once, after, whether to abandon
        abandoned = False
        try:
            with eval_mode(st.recipe.nets.values(), st.ema.values()):
                mine = self.evaluator.features(st.recipe, st.nets_for_sampling()["G"], st.step, loop.device,
                                               (d.rank, d.world), stop=loop.stop_asked)
        except StopRequested:
            abandoned = True
        if d.max_over_ranks([float(abandoned)])[0]:
            if d.main:
                loop.progress.say(f"evaluation at step {st.step} abandoned: a stop was asked (the checkpoint "
                                  "follows)")
            return None
        return d.run_on_rank0(functools.partial(self.score, loop, d.gather(mine), ranks), share=False)

    def score(self, loop, parts, ranks) -> dict:
        row = {**self.evaluator.score(parts, loop.state.step, loop.checkpoint_state(ranks)), **loop.when()}
        loop.progress.note(f"step {loop.state.step}: " + "  ".join(f"{k[5:]} {v:.4g}" for k, v in row.items()
                                                                    if k.startswith("eval/")))
        return row
