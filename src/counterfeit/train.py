"""train(cfg): the one training loop every recipe runs on.

Per step (one G update):
  joint mode (k = 1, the 2014 code): one minibatch, one forward pass; D's gradient from D's loss and G's gradient
      from G's loss are taken from the same graph, then both optimizers step.
  alternating mode (Algorithm 1): k times {fresh minibatch -> D step}, then one G step on fresh noise.
Learning rate and momentum follow closed-form schedules of the update count, so a resumed run sets them exactly.
Ticks: metrics row every `log_every` steps, fixed-noise grid (+ Parzen monitor) every `sample_every` steps,
checkpoint every `checkpoint_every` steps and at the end. Resume restores weights, optimizers, RNG state and the
position in the data, so N steps + resume to 2N equals 2N uninterrupted steps bit for bit on CPU.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from . import config as config_mod
from .data import ImageData, load_data, to_float, to_uint8
from .errors import UserError
from .metrics.parzen import PAPER_SIGMAS, parzen_log_likelihoods
from .recipes import Losses, build_recipe
from .viz.curves import plot_curves
from .viz.grid import make_gif, save_grid
from .viz.report import write_report

# Keys that say how long / where to run, not what to train: they may change on --resume.
RESUMABLE_KEYS = {"train.steps", "train.epochs", "train.device", "train.threads", "train.max_minutes",
                  "train.eval_every", "train.eval_samples", "description"}


@dataclass
class RunResult:
    run_dir: Path
    step: int
    total_steps: int
    wall_s: float
    checkpoint: Path | None


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available on this machine")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UserError(f"unknown device '{name}' (use cpu or cuda)")
    return torch.device(name)


def lr_at(lr0: float, updates: int, decay: float, min_lr: float) -> float:
    """pylearn2 ExponentialDecay: lr <- max(lr / decay, min_lr) after every update."""
    if decay == 1.0:
        return lr0
    return max(lr0 * decay ** (-updates), min_lr)  # a negative power underflows to 0 instead of overflowing


def linear_decay(step: int, start: int, total: int) -> float:
    """Factor on the lr: 1 before G step `start` (0 = never decay), then linearly down to 0 at the last step
    (Pix2Pix / CycleGAN: constant, then linear decay to zero)."""
    if start <= 0 or step < start or total <= start:
        return 1.0
    return max(0.0, 1.0 - (step - start) / (total - start))


def momentum_at(o, epoch: int) -> float:
    """pylearn2 MomentumAdjustor: linear from `momentum` to `final_momentum` between start and saturate epochs."""
    span = o.momentum_saturate_epoch - o.momentum_start_epoch
    alpha = 1.0 if span <= 0 else min(1.0, max(0.0, (epoch + 1 - o.momentum_start_epoch) / span))
    return o.momentum * (1 - alpha) + alpha * o.final_momentum


def monitor_data(cfg) -> ImageData | None:
    """Validation images for the cheap Parzen monitor: MNIST's paper-valid split, else a test split, else none."""
    for split in (["paper-valid"] if cfg.data.split == "paper-train" else []) + ["test"]:
        try:
            d = load_data(cfg.data.name, split, cfg.data.image_size, cfg.data.channels)
            return d.subset(0, cfg.train.parzen_monitor_valid)
        except UserError:
            continue
    return None


def _guard_run_dir(run: Path, resume: bool) -> None:
    if resume:
        return
    if (run / "config.json").exists() or ckpt.list_checkpoints(run):
        raise UserError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise UserError(f"{run} exists and is not an empty folder; choose another --out")


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    tmp.replace(path)


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint so the log matches the restored state."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            pass
    path.write_text("".join(line + "\n" for line in keep))


def train(cfg: config_mod.Config, out_dir: str | Path, resume: bool = False, allow_config_change: bool = False,
          progress: bool = True) -> RunResult:
    run = Path(out_dir)
    t_cfg, o = cfg.train, cfg.optim
    _guard_run_dir(run, resume)
    device = resolve_device(t_cfg.device)
    if t_cfg.threads:
        torch.set_num_threads(t_cfg.threads)
    if t_cfg.n_dis < 1:
        raise UserError("train.n_dis must be >= 1")
    if t_cfg.precision not in ("fp32", "bf16"):
        raise UserError(f"train.precision must be fp32 or bf16, not '{t_cfg.precision}'")

    # ------------------------------------------------------------------ data, nets, optimizers
    data = load_data(cfg.data.name, cfg.data.split, cfg.data.image_size, cfg.data.channels, cfg.data.limit)
    torch.manual_seed(t_cfg.seed)
    recipe = build_recipe(cfg, data.shape, data)
    G, D = recipe.G.to(device), recipe.D.to(device)
    opt_g, opt_d = recipe.optimizers()
    joint = t_cfg.simultaneous and t_cfg.n_dis == 1
    if joint and not recipe.supports_joint:
        raise UserError(f"recipe '{cfg.model.recipe}' has no simultaneous update; set train.simultaneous=false")
    k = 1 if joint else t_cfg.n_dis

    B, N = t_cfg.batch_size, len(data)
    batches_per_epoch = N // B
    if batches_per_epoch == 0:
        raise UserError(f"train.batch_size {B} is larger than the dataset ({N} examples)")
    steps_per_epoch = max(1, batches_per_epoch // k)
    total = t_cfg.steps or t_cfg.epochs * steps_per_epoch
    if total <= 0:
        raise UserError("nothing to do: set --steps or --epochs")
    sample_every = t_cfg.sample_every or steps_per_epoch
    ckpt_every = t_cfg.checkpoint_every or steps_per_epoch
    x_all = data.x.to(device)  # uint8 (N, C, H, W), indexed per batch
    y_all = None if data.y is None else data.y.to(device)
    n_fixed = t_cfg.sample_grid**2 if data.is_image else 2500  # toy frames show 2,500 points (PacGAN's count)
    fixed_z = recipe.sample_z(n_fixed, generator=torch.Generator().manual_seed(t_cfg.seed + 777)).to(device)
    # conditional models: row r of the grid shows class r (mod the number of classes)
    fixed_y = (torch.arange(n_fixed) // t_cfg.sample_grid % recipe.num_classes).to(device) \
        if recipe.conditional else None
    G_ema = None
    if t_cfg.ema_decay > 0:  # exponential moving average of G's weights (Yazici et al.; Karras et al.)
        G_ema = copy.deepcopy(G).requires_grad_(False)

    # bad evaluation settings fail here, before anything is written to the run dir
    evaluator = _Evaluator(cfg, run, data) if t_cfg.eval_every > 0 else None

    # ------------------------------------------------------------------ start or resume
    step, batches, elapsed = 0, 0, 0.0
    if resume:
        path = ckpt.latest_checkpoint(run)
        if path is None:
            raise UserError(f"--resume: no checkpoint in {run}")
        state = ckpt.safe_load(path)
        changes = [c for c in config_mod.diff(json.loads(state["config"]), cfg.to_dict())
                   if c.split(":")[0] not in RESUMABLE_KEYS]
        if changes and not allow_config_change:
            raise UserError(f"config differs from the run's ({'; '.join(changes[:4])}); "
                            "pass --allow-config-change to resume anyway")
        try:
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
            opt_g.load_state_dict(state["optG"])
            opt_d.load_state_dict(state["optD"])
            if G_ema is not None:
                G_ema.load_state_dict(state["G_ema"])
        except (RuntimeError, ValueError, KeyError) as e:  # KeyError: e.g. no G_ema in a run without EMA
            raise UserError(f"checkpoint {path} does not fit this config: {str(e).splitlines()[0][:200]}") from None
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and len(state.get("rng_cuda", [])):
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        step, batches, elapsed = int(state["step"]), int(state["batches"]), float(state["elapsed"])
        _truncate_metrics(run / "metrics.jsonl", step)
        for p in (run / "samples").glob("step-*.png"):
            if int(p.stem.split("-")[1]) > step:
                p.unlink()
    run.mkdir(parents=True, exist_ok=True)
    (run / "samples").mkdir(exist_ok=True)
    _write_json(run / "config.json", cfg.to_dict())  # resolved options, before training starts
    if step >= total:
        return RunResult(run, step, total, elapsed, ckpt.latest_checkpoint(run))

    valid = monitor_data(cfg) if t_cfg.parzen_monitor and data.is_image else None
    tb = _tensorboard(run, purge_step=step)
    metrics_f = open(run / "metrics.jsonl", "a")
    perm_cache: dict[int, torch.Tensor] = {}

    def next_batch():
        nonlocal batches
        epoch, i = divmod(batches, batches_per_epoch)
        if epoch not in perm_cache:  # a fresh shuffle per epoch, a pure function of (seed, epoch)
            perm_cache.clear()
            perm_cache[epoch] = torch.randperm(N, generator=torch.Generator().manual_seed(t_cfg.seed * 1_000_003 + epoch))
        idx = perm_cache[epoch][i * B : (i + 1) * B].to(device)
        batches += 1
        real = to_float(x_all[idx], cfg.data.range)  # (B, C, H, W) float32
        return real, None if y_all is None else y_all[idx]

    def set_hparams():
        epoch = batches // batches_per_epoch
        recipe.step = step
        for opt, lr0, updates in ((opt_g, o.lr_g, step), (opt_d, o.lr_d, step * k)):
            for g in opt.param_groups:
                g["lr"] = lr_at(lr0, updates, o.lr_decay, o.min_lr) * linear_decay(step, o.linear_decay_start, total)
                if o.name == "sgd":
                    g["momentum"] = momentum_at(o, epoch)

    def autocast():
        # bf16 on CPUs with AVX-512 bf16 / AMX and on GPUs: 1.3-1.6x the steps per second of the 28x28 DCGANs here
        # (bench/precision_speed.py); weights, optimizer state and the losses (logits cast back by the recipe) stay fp32
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=t_cfg.precision == "bf16")

    d_params = [p for p in D.parameters() if p.requires_grad]
    g_params = [p for p in G.parameters() if p.requires_grad]

    @torch.no_grad()
    def update_ema():
        # warm-up as TensorFlow's ExponentialMovingAverage(num_updates): early on the average would otherwise be
        # mostly the random initial weights (0.999^1000 = 0.37 of them after 1,000 steps)
        d = min(t_cfg.ema_decay, (1.0 + step) / (10.0 + step))
        for pe, p in zip(G_ema.parameters(), G.parameters()):
            pe.lerp_(p, 1.0 - d)  # pe <- d * pe + (1 - d) * p
        for be, b in zip(G_ema.buffers(), G.buffers()):
            be.copy_(b)

    def one_step() -> tuple[Losses, Losses]:
        set_hparams()
        ld, lg = _update()
        if G_ema is not None:
            update_ema()
        return ld, lg

    def _update() -> tuple[Losses, Losses]:
        if joint:
            real, y = next_batch()
            with autocast():
                ld, lg = recipe.joint_losses(real, y)
            gd = torch.autograd.grad(sum(ld.terms.values()), d_params, retain_graph=True)
            gg = torch.autograd.grad(sum(lg.terms.values()), g_params)
            for p, g in zip(d_params, gd):
                p.grad = g
            for p, g in zip(g_params, gg):
                p.grad = g
            opt_d.step()
            opt_g.step()
            recipe.after_d_step()
            return ld, lg
        for _ in range(k):
            real, y = next_batch()
            with autocast():
                ld = recipe.d_losses(real, y)
            opt_d.zero_grad(set_to_none=True)
            sum(ld.terms.values()).backward()
            opt_d.step()
            recipe.after_d_step()
        D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        with autocast():
            lg = recipe.g_losses(B, y)
        opt_g.zero_grad(set_to_none=True)
        sum(lg.terms.values()).backward()
        opt_g.step()
        D.requires_grad_(True)
        return ld, lg

    def sample_tick():
        G.eval()
        with torch.no_grad():
            G_show = G_ema if G_ema is not None else G
            G_show.eval()
            path = run / "samples" / f"step-{step:08d}.png"
            row = {"step": step, "epoch": round(batches / batches_per_epoch, 3), "time": round(elapsed + time.time() - t0, 2)}
            if data.is_image:
                imgs = to_uint8(recipe.generate(fixed_z, fixed_y, G=G_show), cfg.data.range)
                save_grid(imgs, path, nrow=t_cfg.sample_grid)
            else:
                from .viz.toy import toy_frame

                row.update(toy_frame(path, recipe, G_show, fixed_z, cfg.data.name, step))
            if valid is not None:
                gen = torch.Generator().manual_seed(t_cfg.seed * 7919 + step)  # own stream: training RNG untouched
                z = recipe.sample_z(t_cfg.parzen_monitor_samples, generator=gen).to(device)
                y = recipe.sample_labels(len(z), generator=gen)
                fake = recipe.generate(z, None if y is None else y.to(device), G=G_show).float().cpu()
                if cfg.data.range == "pm1":
                    fake = (fake + 1) / 2
                ll = parzen_log_likelihoods(fake, valid.x, PAPER_SIGMAS).mean(1)
                row["parzen/monitor"] = float(ll.max())
                row["parzen/monitor_sigma"] = float(PAPER_SIGMAS[int(ll.argmax())])
        G.train()
        if tb is not None:
            tb.add_image("samples", np.array(_read_png(path)), step, dataformats="HWC")
        return row

    def state_now() -> dict:
        return {
            "format": ckpt.FORMAT, "step": step, "batches": batches, "elapsed": elapsed + (time.time() - t0),
            "G": G.state_dict(), "D": D.state_dict(), "optG": opt_g.state_dict(), "optD": opt_d.state_dict(),
            **({"G_ema": G_ema.state_dict()} if G_ema is not None else {}),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8),
            "fixed_z": fixed_z.cpu(), "config": cfg.to_json(), "shape": list(data.shape),
        }

    def checkpoint_tick() -> Path:
        if not all(torch.isfinite(p).all() for p in (*G.parameters(), *D.parameters())):
            raise UserError(f"training diverged: non-finite weights at step {step}; last good checkpoint: "
                            f"{ckpt.latest_checkpoint(run) or 'none'} (try a lower learning rate)")
        path = ckpt.checkpoint_path(run, step)
        ckpt.atomic_save(state_now(), path)
        ckpt.prune(run, t_cfg.keep_checkpoints)
        # the GIF, curves and report take seconds to rebuild: at most once a minute, and always at the end
        if step == total or time.time() - last_refresh[0] > 60:
            make_gif(sorted((run / "samples").glob("step-*.png")), run / "progress.gif")
            plot_curves(run / "metrics.jsonl", run / "curves.png", title=f"{cfg.name}: {cfg.model.recipe}")
            write_report(run)
            last_refresh[0] = time.time()
        return path

    def eval_tick() -> dict:
        G.eval()
        G_show = G_ema if G_ema is not None else G
        G_show.eval()
        with torch.no_grad():
            row = evaluator(recipe, G_show, step, state_now, device)
        G.train()
        row.update({"epoch": round(batches / batches_per_epoch, 3), "time": round(elapsed + time.time() - t0, 2)})
        if bar is not None:
            bar.write(f"step {step}: " + "  ".join(f"{k[5:]} {v:.4g}" for k, v in row.items() if k.startswith("eval/")))
        return row

    def over_budget() -> bool:
        return t_cfg.max_minutes > 0 and elapsed + time.time() - t0 >= 60.0 * t_cfg.max_minutes

    # ------------------------------------------------------------------ the loop
    bar = _progress(total, step, progress)
    step0 = step  # where this invocation started (a resumed run's rate counts only its own steps)
    sums: dict[str, float] = {}
    count, t0, t_window = 0, time.time(), time.time()
    last_ckpt = None
    last_refresh = [0.0]  # wall time of the last GIF/curves/report rebuild
    if step == 0:
        _log(metrics_f, tb, sample_tick())
    try:
        while step < total:
            ld, lg = one_step()
            step += 1
            count += 1
            if over_budget() and step < total:  # the time budget is spent: this step is the last one
                total = step
                if bar is not None:
                    bar.total = step
                    bar.write(f"time budget of {t_cfg.max_minutes:g} min reached at step {step}")
            for who, losses in (("D", ld), ("G", lg)):
                for name, v in losses.terms.items():
                    sums[f"loss/{who}/{name}"] = sums.get(f"loss/{who}/{name}", 0.0) + float(v.detach())
                sums[f"loss/{who}/total"] = sums.get(f"loss/{who}/total", 0.0) + float(sum(v.detach() for v in losses.terms.values()))
                for name, v in losses.stats.items():
                    sums[name] = sums.get(name, 0.0) + v
            if step % t_cfg.log_every == 0 or step == total:
                now = time.time()
                row = {"step": step, "epoch": round(batches / batches_per_epoch, 3), "time": round(elapsed + now - t0, 2)}
                row.update({key: v / count for key, v in sums.items()})
                row["lr/G"], row["lr/D"] = opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"]
                if o.name == "sgd":
                    row["momentum"] = opt_d.param_groups[0]["momentum"]
                row["img/s"] = count * B * k / max(now - t_window, 1e-9)
                bad = [key for key, v in row.items() if key.startswith("loss/") and not math.isfinite(v)]
                if bad:  # diverged: stop before writing a poisoned checkpoint over good ones
                    raise UserError(f"training diverged: {', '.join(bad)} not finite by step {step}; last good "
                                    f"checkpoint: {ckpt.latest_checkpoint(run) or 'none'} (try a lower learning rate)")
                _log(metrics_f, tb, row)
                if bar is not None:
                    bar.set_postfix({"D": f"{row['loss/D/total']:.3f}", "G": f"{row['loss/G/total']:.3f}",
                                     **{k: f"{row[k]:.2f}" for k in ("D(x)", "D(G(z))", "critic(x)", "critic(G(z))")
                                        if k in row},
                                     "img/s": f"{row['img/s']:.0f}"}, refresh=False)
                    if t_cfg.max_minutes > 0:  # a time budget: the bar's end is where the budget will stop it
                        left = max(0.0, 60.0 * t_cfg.max_minutes - row["time"])
                        bar.total = min(total, step + int(left * (step - step0) / max(now - t0, 1e-9)))
                sums, count, t_window = {}, 0, now
            if bar is not None:
                bar.update(1)
            if step % sample_every == 0 or step == total:
                _log(metrics_f, tb, sample_tick())
            if evaluator is not None and (step % t_cfg.eval_every == 0 or step == total):
                _log(metrics_f, tb, eval_tick())
            if step % ckpt_every == 0 or step == total:
                metrics_f.flush()
                last_ckpt = checkpoint_tick()
    except KeyboardInterrupt:
        done = ckpt.latest_checkpoint(run)
        raise UserError(f"interrupted at step {step}; last checkpoint: {done or 'none'} (continue with --resume)") from None
    finally:
        metrics_f.close()
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()
    return RunResult(run, step, total, elapsed + time.time() - t0, last_ckpt)


# ---------------------------------------------------------------------- evaluation during training


class _Evaluator:
    """Scores G every `train.eval_every` steps with the bundled classifier, as `counterfeit evaluate` does.

    The first of fid/kid/is in `train.eval_metrics` picks the best step; its full training state is written
    atomically to run/best.pt (a checkpoint like the others: sample and resume from it) and its scores to best.json.
    """

    def __init__(self, cfg, run: Path, data):
        from .metrics.evaluate import SELECTORS, real_features, reference_name
        from .metrics.features import load_extractor

        t = cfg.train
        if not data.is_image:
            raise UserError("train.eval_every: evaluation with a classifier needs an image dataset")
        self.metrics = list(t.eval_metrics)
        picks = [m for m in self.metrics if m in SELECTORS]
        if not picks:
            raise UserError(f"train.eval_metrics {self.metrics} has none of {sorted(SELECTORS)} to pick the best step")
        self.key, (self.value_of, self.lower_is_better) = picks[0], SELECTORS[picks[0]]
        self.ref = reference_name(cfg.data.name)
        self.ex = load_extractor(t.eval_extractor or self.ref)  # fails now, with the reason, not at the first tick
        self.real = real_features(self.ex, self.ref)  # computed (or read from the cache) once, held for every tick
        self.n, self.seed, self.run = t.eval_samples, t.seed, run
        self.best = None
        if (run / "best.json").is_file():  # resumed: keep competing with the best so far
            self.best = json.loads((run / "best.json").read_text())["value"]

    def __call__(self, recipe, G, step: int, state_now, device) -> dict:
        from .metrics.evaluate import evaluate_images, flat_scores
        from .sampling import generate

        fake = generate(recipe, self.n, seed=self.seed * 7919 + step + 1, G=G, device=device)  # own RNG stream
        r = evaluate_images(fake, self.ref, self.metrics, extractor=self.ex, seed=self.seed, n_boot=0, real=self.real)
        value = self.value_of(r)
        row = {"step": step, **{f"eval/{k}": v for k, v in flat_scores(r).items()}}
        if self.best is None or (value < self.best if self.lower_is_better else value > self.best):
            self.best = value
            ckpt.atomic_save(state_now(), self.run / "best.pt")
            _write_json(self.run / "best.json", {"step": step, "metric": self.key, "value": value,
                                                 "scores": flat_scores(r), "n_generated": self.n,
                                                 "provenance": r["provenance"]})
        row["eval/best_" + self.key] = self.best
        return row


# ---------------------------------------------------------------------- small helpers


def _log(f, tb, row: dict) -> None:
    f.write(json.dumps(row) + "\n")
    if tb is not None:
        for key, v in row.items():
            if key not in ("step", "epoch", "time") and isinstance(v, (int, float)):
                tb.add_scalar(key, v, row["step"])


def _tensorboard(run: Path, purge_step: int):
    if os.environ.get("COUNTERFEIT_NO_TENSORBOARD"):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run / "tb"), purge_step=purge_step or None)


def _read_png(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB").copy()


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5, smoothing=0.05)
