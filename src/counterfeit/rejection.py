"""Discriminator rejection sampling (DRS; Azadi et al. 2019): keep each of G's samples with a probability read off D.

A GAN discriminator that is optimal for the generator being sampled has the logit log p_data(x) / p_g(x), so
accepting x with probability exp(logit(x) - max logit) draws from p_data where G's support covers it. The recipe:

1. D is trained a little longer, G fixed, against exactly the generator that will be sampled (the EMA weights when
   the run kept them; D was trained against the raw G), with the recipe's own D loss on the training data.
2. A burn-in batch of samples sets D_M, the largest logit seen (raised whenever a larger one appears).
3. F(x) = logit - D_M - log(1 - exp(logit - D_M - eps)) - gamma; x is kept when sigmoid(F(x)) > u, u ~ U(0, 1).
   gamma shifts the acceptance rate: it is the `quantile` of F over the burn-in (0.5: samples at the median F are
   kept half the time; higher keeps fewer, better ones). The paper picks gamma as a percentile in the same way.
   With gamma = 0 (quantile None) sigmoid(F) = exp(logit - D_M): plain rejection sampling, exact for an optimal D.

Only recipes whose D is a probability classifier (gan, dcgan, cgan, acgan) have a density-ratio logit; hinge, WGAN
and least-squares critics do not, and are refused.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from .data import load_data, to_float
from .errors import UserError
from .recipes import Recipe
from .recipes.base import make_optimizer
from .sampling import as_output


def _check(recipe: Recipe) -> None:
    if not getattr(recipe, "outputs_probability", False):  # bigan's D scores pairs, ssgan's D classifies
        raise UserError(f"rejection sampling needs a discriminator that outputs P(real) (recipes gan, dcgan, cgan, "
                        f"acgan); '{recipe.cfg.model.recipe}' has a critic whose score is not a density ratio")
    if recipe.pack > 1:
        raise UserError("rejection sampling scores single samples; a packed D (model.pack > 1) scores packs")


class RejectionSampler:
    """Fits a copy of D to the sampled generator, then draws accepted samples batch by batch."""

    def __init__(self, recipe: Recipe, fit_steps: int = 500, quantile: float | None = 0.5, burn_in: int = 10000,
                 seed: int = 0, data=None, progress: bool = False):
        _check(recipe)
        if quantile is not None and not 0.0 <= quantile < 1.0:
            raise UserError(f"rejection quantile must be in [0, 1), got {quantile}")
        if fit_steps < 0:
            raise UserError(f"rejection fit steps must be >= 0, got {fit_steps}")
        self.recipe, self.cfg = recipe, recipe.cfg
        self.gen = torch.Generator().manual_seed(seed)
        self.batch = self.cfg.train.batch_size
        self.D = copy.deepcopy(recipe.D)  # the run's D is left as it was; G is the recipe's own, in eval mode
        recipe.G.eval()
        self.data = data
        self.fit_log = self._fit(fit_steps, seed, progress) if fit_steps > 0 else []
        logits = self._logits(*self._draw(burn_in))
        self.d_max = float(logits.max())
        self.gamma = 0.0 if quantile is None else float(torch.quantile(self._f(logits, 0.0), quantile))
        self.quantile, self.fit_steps = quantile, fit_steps
        self.seen = self.kept = 0

    # ------------------------------------------------------------------------------ D, refitted to this G
    def _fit(self, steps: int, seed: int, progress: bool) -> list[float]:
        cfg = self.cfg
        data = self.data or load_data(cfg.data.name, cfg.data.split, cfg.data.image_size, cfg.data.channels,
                                      cfg.data.limit)
        x_all, y_all = data.x, data.y
        opt = make_optimizer(cfg.optim, [p for p in self.D.parameters() if p.requires_grad], cfg.optim.lr_d)
        self.D.train()
        g = torch.Generator().manual_seed(seed + 1)
        losses = []
        # the recipe's own D loss against the sampled generator; its noise comes from torch's global generator,
        # seeded here inside a forked RNG state so a refit is repeatable and the caller's RNG is left alone
        with self._swapped(), torch.random.fork_rng():
            torch.manual_seed(seed + 2)
            it = range(steps)
            if progress:
                from tqdm import tqdm

                it = tqdm(it, desc="refit D for rejection", unit="step", leave=False)
            for _ in it:
                idx = torch.randint(len(x_all), (self.batch,), generator=g)
                real = to_float(x_all[idx], cfg.data.range)
                ld = self.recipe.d_losses(real, None if y_all is None else y_all[idx])
                loss = sum(ld.terms.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        return losses

    @contextlib.contextmanager
    def _swapped(self):
        """The recipe's machinery (losses, packing, conditioning) on this sampler's copy of D."""
        run_D, self.recipe.D = self.recipe.D, self.D
        try:
            yield
        finally:
            self.recipe.D = run_D

    # ------------------------------------------------------------------------------ scoring
    @torch.no_grad()
    def _draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = self.recipe.sample_z(n, generator=self.gen)
        y = self.recipe.sample_labels(n, generator=self.gen)
        return self.recipe.generate(z, y), y

    @torch.no_grad()
    def _logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        # D scores batches of generated images the way it saw them while training: train mode (BatchNorm on the
        # batch's own statistics), on this copy of D, in the training batch size
        self.D.train()
        for m in self.D.modules():  # ... but no dropout: a sample's score should not be a coin toss
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
        out = []
        with self._swapped():
            for i in range(0, len(x), self.batch):
                yi = None if y is None or not self.recipe.conditional else y[i : i + self.batch]
                out.append(self.recipe._critic(x[i : i + self.batch], yi)[0])
        return torch.cat(out)

    def _f(self, logits: torch.Tensor, gamma: float) -> torch.Tensor:
        eps = 1e-6
        d = (logits - self.d_max).clamp(max=0.0).double()
        return d - torch.log1p(-torch.exp(d - eps)) - gamma

    @torch.no_grad()
    def sample(self, n: int, chunk: int = 1000, max_draws: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """n accepted samples (float, the recipe's range) and their labels (conditional recipes)."""
        if n <= 0:
            raise UserError(f"--n must be positive, got {n}")
        max_draws = max_draws or 200 * n
        xs, ys, got = [], [], 0
        while got < n:
            if self.seen >= max_draws:
                raise UserError(f"rejection sampling kept {self.kept} of {self.seen} samples; lower the quantile")
            x, y = self._draw(chunk)
            logits = self._logits(x, y)
            if logits.max() > self.d_max:  # the paper's update of D_M
                self.d_max = float(logits.max())
            keep = torch.sigmoid(self._f(logits, self.gamma)) > torch.rand(len(x), generator=self.gen).double()
            self.seen += len(x)
            self.kept += int(keep.sum())
            xs.append(x[keep])
            ys.append(None if y is None else y[keep])
            got += int(keep.sum())
        x = torch.cat(xs)[:n]
        y = None if ys[0] is None else torch.cat(ys)[:n]
        return x, y

    @property
    def acceptance(self) -> float:
        return self.kept / max(1, self.seen)

    def info(self) -> dict:
        return {"method": "discriminator rejection sampling (Azadi et al. 2019)", "fit_steps": self.fit_steps,
                "quantile": self.quantile, "gamma": round(self.gamma, 4), "d_max": round(self.d_max, 4),
                "acceptance": round(self.acceptance, 4), "seen": self.seen,
                "fit_loss_last": round(sum(self.fit_log[-50:]) / max(1, len(self.fit_log[-50:])), 4)
                if self.fit_log else None}


def generate_rejected(recipe: Recipe, n: int, seed: int = 0, fit_steps: int = 500, quantile: float | None = 0.5,
                      as_uint8: bool = True, progress: bool = False) -> tuple[torch.Tensor, dict]:
    """n samples kept by DRS: uint8 (N, C, H, W), or float in [0, 1] / raw toy values, plus the sampler's info."""
    if n <= 0:  # before the refit, not after it
        raise UserError(f"--n must be positive, got {n}")
    s = RejectionSampler(recipe, fit_steps=fit_steps, quantile=quantile, seed=seed, progress=progress)
    x, _ = s.sample(n)
    return as_output(x, recipe.cfg.data.range, as_uint8), s.info()


