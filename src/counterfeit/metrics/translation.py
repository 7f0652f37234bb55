"""Scores of an image-to-image run on its test split (the same `evaluate` command as every run).

Paired test sets (edges2fashion's, colorize's, an aligned folder's):
  l1     mean |G(a) - b| on pixels in [0, 1];
  psnr   peak signal-to-noise ratio in dB, data range 1 (skimage.metrics.peak_signal_noise_ratio), mean over images;
  ssim   structural similarity (skimage.metrics.structural_similarity, Wang et al.'s settings: Gaussian window
         sigma 1.5, K1 0.01, K2 0.03, population covariance, data range 1; colour: per channel), mean over images;
  each also for the input itself as the output (`baseline`: what doing nothing scores; grayscale repeated to RGB).
Where the bundled classifier knows the B domain (edges2fashion: fashion-mnist):
  acc    the "classifier score", the papers' FCN-score analogue: accuracy of the classifier on G's outputs against
         the labels of the true targets, beside its accuracy on the real targets themselves;
  fid, kid  in the classifier's features, G's outputs against the real test targets.
CycleGAN runs also:
  cycle     |G_BA(G_AB(a)) - a| and |G_AB(G_BA(b)) - b| on [0, 1];
  identity  |G_AB(b) - b| and |G_BA(a) - a| (where A and B have one channel count), and how far G moves its
            input, |G_AB(a) - a|: a G that learned the identity scores ~0 there, and poorly on l1/acc/fid.
The scorer sees the central image, without the padding the task added (`border`). Networks run in eval mode
(BatchNorm running statistics, no dropout) unless net_mode="train" (batch statistics and dropout, as the authors'
test.py without --eval).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..data import to_float, to_uint8
from ..errors import UserError
from . import scores  # noqa: F401  (registers fid and kid, which translations are scored with too)
from .spec import metric, spec

SSIM_SETTINGS = {"function": "skimage.metrics.structural_similarity", "gaussian_weights": True, "sigma": 1.5,
                 "K1": 0.01, "K2": 0.03, "use_sample_covariance": False, "data_range": 1.0,
                 "win_size": 7, "on": "pixels in [0, 1], uint8 outputs / 255"}
PSNR_SETTINGS = {"function": "skimage.metrics.peak_signal_noise_ratio", "data_range": 1.0}
TRANSLATION_METRICS = ["l1", "psnr", "ssim", "acc", "fid", "kid", "cycle", "identity"]


def default_metrics(recipe, data) -> list[str]:
    out = ["l1", "psnr", "ssim"] if data.paired else []
    if data.scorer and data.labels is not None:
        out += ["acc", "fid"]
    if "BtoA" in recipe.directions:
        out += ["cycle", "identity"]
    return out


def _unit(x: torch.Tensor) -> np.ndarray:
    """uint8 (N, C, H, W) -> float64 (N, H, W, C) in [0, 1]."""
    return x.permute(0, 2, 3, 1).numpy().astype(np.float64) / 255.0


def paired_scores(out: torch.Tensor, target: torch.Tensor, metrics: list[str]) -> dict:
    """uint8 outputs and targets (N, C, H, W) of one channel count -> mean l1 / psnr / ssim (each with its std)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    o, t = _unit(out), _unit(target)
    res = {}
    if "l1" in metrics:
        per = np.abs(o - t).mean(axis=(1, 2, 3))
        res["l1"] = {"l1": float(per.mean()), "std": float(per.std()), "n": len(per)}
    if "psnr" in metrics:
        # a perfect image has infinite PSNR: capped at 100 dB so a mean stays finite (reported as such)
        per = np.array([min(100.0, peak_signal_noise_ratio(tt, oo, data_range=1.0)) if np.any(oo != tt) else 100.0
                        for oo, tt in zip(o, t)])
        res["psnr"] = {"psnr": float(per.mean()), "std": float(per.std()), "n": len(per), "settings": PSNR_SETTINGS}
    if "ssim" in metrics:
        s = SSIM_SETTINGS
        per = np.array([structural_similarity(tt, oo, gaussian_weights=True, sigma=s["sigma"], K1=s["K1"], K2=s["K2"],
                                              use_sample_covariance=False, data_range=1.0, win_size=s["win_size"],
                                              channel_axis=2) for oo, tt in zip(o, t)])
        res["ssim"] = {"ssim": float(per.mean()), "std": float(per.std()), "n": len(per), "settings": SSIM_SETTINGS}
    return res


def _as_channels(x: torch.Tensor, c: int) -> torch.Tensor:
    if x.shape[1] == c:
        return x
    if x.shape[1] == 1:
        return x.repeat(1, c, 1, 1)
    return x.float().mean(1, keepdim=True).round().to(torch.uint8)  # colour -> gray by the channel mean


def _strip(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border : x.shape[-2] - border, border : x.shape[-1] - border] if border else x


@torch.no_grad()
def run_nets(fn, x: torch.Tensor, batch: int = 250) -> torch.Tensor:
    """fn over float batches in [-1, 1] -> uint8 outputs."""
    return torch.cat([to_uint8(fn(x[i : i + batch]).float().cpu(), "pm1") for i in range(0, len(x), batch)])


def evaluate_translation(recipe, cfg, info, metrics: list[str] | None, n: int = 0, direction: str = "AtoB",
                         net_mode: str = "eval", seed: int = 0, n_boot: int = 20, data=None) -> dict:
    """Score a translation run on its test split. Returns {"provenance", "data", <metric>: {...}, "seconds",
    "outputs": G's uint8 outputs}."""
    from ..data.translation import provenance

    recipe.check_direction(direction)
    recipe.set_net_mode(net_mode, seed)  # (checked before any data is read)
    data = data if data is not None else _test_split(cfg)
    metrics = _checked(metrics if metrics is not None else default_metrics(recipe, data), recipe, cfg, data, direction)
    full = len(data)
    keep = min(n, full) if n else full
    need = max([(spec(m).min_samples, m) for m in metrics if m in ("fid", "kid")], default=(1, ""))
    if keep < need[0]:
        raise UserError(f"{keep} test pair{'s' if keep != 1 else ''}; metric '{need[1]}' needs at least {need[0]}")
    p = _Pairs(recipe, data.subset(0, keep), direction)
    res: dict = {"provenance": {"checkpoint": info["path"], "step": info["step"], "recipe": cfg.model.recipe,
                                "direction": direction, "net_mode": net_mode, "seed": seed,
                                "test": f"{cfg.data.name} test ({keep} of {full})",
                                "border": p.border, "task": provenance(cfg.data.name)},
                 "data": cfg.data.name, "seconds": {"translate": p.seconds}}
    for group, fn in (("paired", _paired), ("classifier", _by_classifier), ("cycle", _cycle), ("identity", _identity)):
        if any(m in GROUPS[group] for m in metrics):
            t = time.time()
            fn(p, metrics, res, seed=seed, n_boot=n_boot)
            res["seconds"][group] = round(time.time() - t, 2)
    for m in recipe.nets.values():
        m.eval()
    res["outputs"] = p.out  # uint8 (N, C, H, W), for pictures; the CLI drops it from the JSON
    return res


GROUPS = {"paired": ("l1", "psnr", "ssim"), "classifier": ("acc", "fid", "kid"), "cycle": ("cycle",),
          "identity": ("identity",)}


def _test_split(cfg):
    from ..data.translation import load_translation

    d = cfg.data
    try:
        return load_translation(d.name, "test", d.image_size, d.channels)
    except UserError as e:
        raise UserError(f"evaluating a translation run needs its test split: {e}") from None


def _checked(metrics: list[str], recipe, cfg, data, direction: str) -> list[str]:
    """The metrics, refused with the reason where they do not apply to this run, its test split or direction."""
    name = cfg.data.name
    unknown = [m for m in metrics if m not in TRANSLATION_METRICS]
    if unknown or not metrics:
        raise UserError(f"metric(s) {', '.join(unknown) or '(none)'} do not apply to a translation run "
                        f"(these do: {', '.join(TRANSLATION_METRICS)})")
    if any(m in ("l1", "psnr", "ssim", "acc", "fid", "kid") for m in metrics) and not data.paired:
        raise UserError(f"l1/psnr/ssim/acc/fid need test pairs and '{name}' has an unpaired test split "
                        "(use --metrics cycle,identity)")
    if any(m in GROUPS["classifier"] for m in metrics) and (not data.scorer or data.labels is None):
        raise UserError(f"acc/fid/kid need a bundled classifier of the target domain; '{name}' has none "
                        "(edges2fashion has: fashion-mnist)")
    if any(m in ("cycle", "identity") for m in metrics) and "BtoA" not in recipe.directions:
        raise UserError(f"cycle/identity are CycleGAN's terms; a {cfg.model.recipe} run has one generator")
    if direction == "BtoA" and any(m in GROUPS["classifier"] for m in metrics):
        raise UserError("acc/fid/kid score the B domain: evaluate --direction AtoB")
    return metrics


class _Pairs:
    """The test pairs in the direction scored, G's outputs on them (timed), and the border the scorer strips."""

    def __init__(self, recipe, data, direction: str):
        self.recipe, self.data, self.direction = recipe, data, direction
        a, b = recipe.domains({"A": to_float(data.A, "pm1"), "B": to_float(data.B, "pm1")}, train=False)
        self.src, self.tgt = (a, b) if direction == "AtoB" else (b, a)
        t = time.time()
        self.out = run_nets(self.fwd, self.src)
        self.seconds = round(time.time() - t, 2)
        self.src8, self.tgt8 = to_uint8(self.src, "pm1"), to_uint8(self.tgt, "pm1")
        self.border = data.border if direction == "AtoB" else 0

    def fwd(self, x):
        return self.recipe.translate(x, self.direction, self.recipe.nets)

    def back(self, x):
        return self.recipe.translate(x, "BtoA" if self.direction == "AtoB" else "AtoB", self.recipe.nets)


def _paired(p: _Pairs, metrics, res, **_) -> None:
    pm = [m for m in metrics if m in GROUPS["paired"]]
    o, g = _strip(p.out, p.border), _strip(p.tgt8, p.border)
    res.update(paired_scores(o, g, pm))
    base = paired_scores(_strip(_as_channels(p.src8, p.tgt8.shape[1]), p.border), g, pm)
    for m in pm:
        res[m]["baseline_input"] = base[m][m]  # the input itself as the output


def _by_classifier(p: _Pairs, metrics, res, seed: int, n_boot: int) -> None:
    from .features import load_extractor
    from .scores import evaluate_images

    ex = load_extractor(p.data.scorer)
    o, g = _strip(p.out, p.border), _strip(p.tgt8, p.border)
    _, logits = ex(o)
    _, real_logits = ex(g)
    if "acc" in metrics:
        acc = float((logits.argmax(1) == p.data.labels).float().mean())
        real = float((real_logits.argmax(1) == p.data.labels).float().mean())
        res["acc"] = {"acc": acc, "real_targets": real, "gap": real - acc, "n": len(o), "classifier": ex.provenance()}
    fm = [m for m in metrics if m in ("fid", "kid")]
    if fm:
        r = evaluate_images(o, p.data.scorer, fm, extractor=ex, seed=seed, n_boot=n_boot)
        res["provenance"]["features"] = r.pop("provenance")
        res.update({m: r[m] for m in fm})


def _cycle(p: _Pairs, metrics, res, **_) -> None:
    rec_src = run_nets(lambda x: p.back(p.fwd(x)), p.src)
    rec_tgt = run_nets(lambda x: p.fwd(p.back(x)), p.tgt)
    res["cycle"] = {"cycle_A": float(np.abs(_unit(rec_src) - _unit(p.src8)).mean()),
                    "cycle_B": float(np.abs(_unit(rec_tgt) - _unit(p.tgt8)).mean())}


def _identity(p: _Pairs, metrics, res, **_) -> None:
    r = {}
    if p.src.shape[1] == p.tgt.shape[1]:
        r["idt_A"] = float(np.abs(_unit(run_nets(p.fwd, p.tgt)) - _unit(p.tgt8)).mean())  # G_AB(b) vs b
        r["idt_B"] = float(np.abs(_unit(run_nets(p.back, p.src)) - _unit(p.src8)).mean())  # G_BA(a) vs a
        r["moved"] = float(np.abs(_unit(p.out) - _unit(p.src8)).mean())  # |G_AB(a) - a|: ~0 for an identity G
    else:
        r["note"] = f"A has {p.src.shape[1]} channels and B {p.tgt.shape[1]}: no identity to measure"
    res["identity"] = r


def fmt_acc(r):
    return [f"acc:       {r['acc']:.4f} classifier accuracy on translated images; on the real targets "
            f"{r['real_targets']:.4f} (gap {100 * r['gap']:.1f} points, {r['n']} images)"]


def fmt_identity(r):
    if "note" in r:
        return [f"identity:  {r['note']}"]
    return [f"identity:  |G_AB(b) - b| {r['idt_A']:.4f}   |G_BA(a) - a| {r['idt_B']:.4f}   "
            f"|G_AB(a) - a| {r['moved']:.4f} (how far G moves its input)"]


# registered for printing and for `evaluate`'s dispatch; fid and kid here are the feature metrics of scores.py
metric("l1", "translation", False, "l1:        {l1:.4f} +- {std:.4f} (pixels in [0, 1], {n} test pairs; the input "
       "itself: {baseline_input:.4f})")(None)
metric("psnr", "translation", True, "psnr:      {psnr:.2f} dB (the input itself: {baseline_input:.2f} dB)")(None)
metric("ssim", "translation", True, "ssim:      {ssim:.4f} (the input itself: {baseline_input:.4f})")(None)
metric("acc", "translation", True, fmt_acc)(None)
metric("cycle", "translation", False, "cycle:     |G_BA(G_AB(a)) - a| {cycle_A:.4f}   |G_AB(G_BA(b)) - b| "
       "{cycle_B:.4f}")(None)
metric("identity", "translation", None, fmt_identity)(None)
