"""train(cfg): the one training loop every recipe runs on.

A step runs the recipe's phases in order (recipes/base.py): each phase draws a minibatch (a dict of tensors) or
reuses the step's last one, asks the recipe for each optimizer group's loss terms, runs backward() and steps that
group's optimizer. A joint phase (the 2014 code's simultaneous update) takes every group's gradient from one
forward pass: backward(inputs=the group's parameters) for each, never torch.autograd.grad into .grad.
Learning rate and momentum follow closed-form schedules of the update count, so a resumed run sets them exactly.
Side jobs are hooks with their own interval: a metrics row every `log_every` steps, the fixed preview grid (+ Parzen
monitor) every `sample_every`, an evaluation every `eval_every`, a checkpoint every `checkpoint_every` and at the end.
Resume restores weights, optimizers, EMA, the recipe's own state, RNG state and the position in the data, so N steps
+ resume to 2N equals 2N uninterrupted steps bit for bit on CPU.

Exit paths besides success: bad input raises UserError (exit 2, nothing written); divergence raises Diverged (exit 3)
before a poisoned checkpoint is written; SIGINT / SIGTERM finish the current step, write a checkpoint and raise
Interrupted (exit 130 / 143); a second signal stops at once.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import checkpoint as ckpt
from . import config as config_mod
from . import dist as dist_mod
from .data import ImageData, load_data, to_float
from .data.sampler import Batches
from .errors import Diverged, Interrupted, PeerLost, TrainingStopped, UserError
from .metrics.parzen import PAPER_SIGMAS, parzen_log_likelihoods
from .recipes import Losses, Recipe, build_recipe
from .runtime import ThreadPolicy, keep_freed_memory, resolve_precision
from .viz.curves import plot_curves
from .viz.grid import make_gif, save_grid
from .viz.report import write_report

# Keys that say how long / where to run, not what to train: they may change on --resume.
# train.precision: where `auto` resolved differently (another machine), the run goes on in what this one has natively.
RESUMABLE_KEYS = {"train.steps", "train.epochs", "train.device", "train.threads", "train.max_minutes",
                  "train.eval_every", "train.eval_samples", "train.precision", "train.compile", "train.memory_format",
                  "train.patience", "description"}


@dataclass
class RunResult:
    run_dir: Path
    step: int
    total_steps: int
    wall_s: float
    checkpoint: Path | None
    nets: dict = field(default_factory=dict)  # the trained networks ({"G", "D", "ema/G"...}), as they ended


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


# ---------------------------------------------------------------------- training state


@dataclass
class TrainState:
    """Everything a checkpoint holds and a resume restores."""

    recipe: Recipe
    groups: dict  # {group: OptGroup}
    ema: dict[str, torch.nn.Module]  # moving averages of recipe.ema_nets (sampling uses them)
    fixed: dict[str, torch.Tensor]  # the preview's fixed inputs
    batches: Batches
    step: int = 0
    elapsed: float = 0.0  # training seconds before this invocation
    t0: float = field(default_factory=time.time)
    dist: dist_mod.Dist = field(default_factory=dist_mod.Dist)
    ddp: dict[str, torch.nn.Module] = field(default_factory=dict)  # DistributedDataParallel per network, under torchrun
    scalers: dict = field(default_factory=dict)  # {group: torch.amp.GradScaler} under fp16

    def wall(self) -> float:
        return self.elapsed + time.time() - self.t0

    def nets_for_sampling(self) -> dict[str, torch.nn.Module]:
        return {**self.recipe.nets, **self.ema}

    def rank_state(self, device) -> dict:
        """What differs between ranks: the random streams and the recipe's own state (an image pool)."""
        return {"rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.empty(0, dtype=torch.uint8),
                "recipe": self.recipe.state_dict()}

    def state_dict(self, cfg, shape, device, ranks: list[dict] | None = None) -> dict:
        """The checkpoint. Under torchrun `ranks` is every rank's rank_state() (gathered by all of them)."""
        mine = self.rank_state(device) if ranks is None else ranks[0]
        state = {
            "format": ckpt.FORMAT, "step": self.step, "batches": self.batches.drawn, "elapsed": self.wall(),
            "nets": {n: m.state_dict() for n, m in self.recipe.nets.items()},
            "opts": {g: grp.optimizer.state_dict() for g, grp in self.groups.items()},
            "ema": {n: m.state_dict() for n, m in self.ema.items()}, "recipe": mine["recipe"],
            "fixed": {k: v.cpu() for k, v in self.fixed.items()},
            "rng_cpu": mine["rng_cpu"], "rng_cuda": mine["rng_cuda"],
            "config": cfg.to_json(), "shape": list(shape), "world": self.dist.world,
            "scalers": {g: s.state_dict() for g, s in self.scalers.items()},
        }
        if self.dist.on:
            state["ranks"] = ranks
            state["shared_rng"] = self.recipe.shared.get_state()
        return state

    def load_state_dict(self, state: dict, device, path) -> None:
        d = self.dist
        mine = state["ranks"][d.rank] if d.on else state
        try:
            for n, m in self.recipe.nets.items():
                m.load_state_dict(state["nets"][n])
            for g, grp in self.groups.items():
                grp.optimizer.load_state_dict(state["opts"][g])
            for n, m in self.ema.items():
                m.load_state_dict(state["ema"][n])
            self.recipe.load_state_dict(mine.get("recipe", {}))
            for g, s in self.scalers.items():
                s.load_state_dict(state["scalers"][g])
        except (RuntimeError, ValueError, KeyError) as e:  # KeyError: e.g. no EMA in a run without EMA
            raise UserError(f"checkpoint {path} does not fit this config: {str(e).splitlines()[0][:200]}") from None
        torch.set_rng_state(mine["rng_cpu"])
        if device.type == "cuda" and len(mine.get("rng_cuda", [])):
            torch.cuda.set_rng_state(mine["rng_cuda"], device)
        if d.on:
            self.recipe.shared.set_state(state["shared_rng"])
        self.step, self.batches.drawn, self.elapsed = int(state["step"]), int(state["batches"]), float(state["elapsed"])


def updates_per_step(phases, group: str) -> int:
    return sum(p.repeat for p in phases if group in p.groups)


def set_hparams(st: TrainState, cfg, phases, total: int) -> None:
    o = cfg.optim
    st.recipe.step = st.step
    epoch = st.batches.drawn // st.batches.per_epoch
    for name, grp in st.groups.items():
        lr = lr_at(grp.lr, st.step * updates_per_step(phases, name), o.lr_decay, o.min_lr)
        for g in grp.optimizer.param_groups:
            g["lr"] = lr * linear_decay(st.step, o.linear_decay_start, total)
            if o.name == "sgd":
                g["momentum"] = momentum_at(o, epoch)


@contextlib.contextmanager
def frozen(nets: dict[str, torch.nn.Module], names: tuple[str, ...]):
    """Hold networks fixed for a phase: gradients flow through them, not into their weights."""
    for n in names:
        nets[n].requires_grad_(False)
    try:
        yield
    finally:
        for n in names:
            nets[n].requires_grad_(True)


@contextlib.contextmanager
def distributed(st: TrainState, phase):
    """Under torchrun, the recipe's networks are their DistributedDataParallel wrappers for the phase: the gradients
    of the networks it steps are averaged over the ranks inside backward(); the frozen ones run under no_sync(), so
    their forward passes prepare no reduction (a frozen net has no gradients to sync)."""
    if not st.ddp:
        yield
        return
    raw = dict(st.recipe.nets)
    with contextlib.ExitStack() as stack:
        for n in phase.freeze:
            stack.enter_context(st.ddp[n].no_sync())
        st.recipe.nets.update(st.ddp)
        try:
            yield
        finally:
            st.recipe.nets.update(raw)


def run_step(st: TrainState, phases, autocast) -> dict[str, Losses]:
    """One training step: every phase of the recipe, in order. Returns each group's latest losses."""
    recipe, out, batch = st.recipe, {}, None
    scale = (lambda g, loss: st.scalers[g].scale(loss)) if st.scalers else (lambda g, loss: loss)
    for phase in phases:
        for _ in range(phase.repeat):
            if phase.data or batch is None:
                batch = st.batches.next()  # {"x": (B, C, H, W) float, "y": (B,) ...}
            with frozen(recipe.nets, phase.freeze), distributed(st, phase):
                with autocast():
                    losses = recipe.losses(phase.name, batch)
                groups = [st.groups[g] for g in phase.groups]
                for grp in groups:
                    grp.optimizer.zero_grad(set_to_none=True)
                if len(groups) == 1:
                    scale(phase.groups[0], sum(losses[phase.groups[0]].terms.values())).backward()
                else:  # joint: each group's gradient from its own losses, over the one shared graph
                    for i, (g, grp) in enumerate(zip(phase.groups, groups)):
                        scale(g, sum(losses[g].terms.values())).backward(inputs=recipe.group_params(grp),
                                                                         retain_graph=i < len(groups) - 1)
                for g, grp in zip(phase.groups, groups):
                    if st.scalers:
                        st.scalers[g].step(grp.optimizer)
                        st.scalers[g].update()
                    else:
                        grp.optimizer.step()
                recipe.after_step(phase.name)
        out.update(losses)
    return out


@torch.no_grad()
def _sync_buffers(st: TrainState) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, before a checkpoint: DDP broadcasts them at
    each forward anyway, so training is unchanged, and every rank then holds exactly what the checkpoint holds."""
    import torch.distributed as tdist

    for m in [*st.recipe.nets.values(), *st.ema.values()]:
        for b in m.buffers():
            if st.dist.backend == "gloo" and b.device.type != "cpu":
                continue
            tdist.broadcast(b, src=0)


@torch.no_grad()
def update_ema(st: TrainState, decay: float) -> None:
    # warm-up as TensorFlow's ExponentialMovingAverage(num_updates): early on the average would otherwise be
    # mostly the random initial weights (0.999^1000 = 0.37 of them after 1,000 steps)
    d = min(decay, (1.0 + st.step) / (10.0 + st.step))
    for name, avg in st.ema.items():
        net = st.recipe.nets[name]
        for pe, p in zip(avg.parameters(), net.parameters()):
            pe.lerp_(p, 1.0 - d)  # pe <- d * pe + (1 - d) * p
        for be, b in zip(avg.buffers(), net.buffers()):
            be.copy_(b)


def non_finite(nets: dict[str, torch.nn.Module]) -> list[str]:
    """Networks with a NaN or inf in a parameter or a float buffer (e.g. BatchNorm's running variance)."""
    return [n for n, m in nets.items()
            if not all(torch.isfinite(t).all() for t in m.state_dict().values() if t.is_floating_point())]


# ---------------------------------------------------------------------- run dir


class RunWriter:
    """metrics.jsonl rows and TensorBoard events of a run: every file the loop writes besides checkpoints and
    images goes through here."""

    def __init__(self, run: Path, purge_step: int):
        self.f = open(run / "metrics.jsonl", "a")
        self.tb = _tensorboard(run, purge_step)

    def log(self, row: dict | None) -> None:
        if not row:
            return
        self.f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            for key, v in row.items():
                if key not in ("step", "epoch", "time") and isinstance(v, (int, float)):
                    self.tb.add_scalar(key, v, row["step"])

    def image(self, tag: str, path: Path, step: int) -> None:
        if self.tb is not None:
            self.tb.add_image(tag, np.array(_read_png(path)), step, dataformats="HWC")

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()
        if self.tb is not None:
            self.tb.close()


@dataclass
class Hook:
    """A side job of the loop that runs every `every` steps and after the last one; returns a row to log.

    `on_signal` False: a stop asked by SIGINT / SIGTERM skips it unless the step is one of its own. The preview
    with the Parzen monitor and an evaluation take seconds to minutes, and torchrun kills its workers 30 s after
    passing a signal on: the checkpoint must not wait for them."""

    every: int
    run: Callable[[], dict | None]
    on_signal: bool = True

    def due(self, step: int, total: int, signalled: bool = False) -> bool:
        return step % self.every == 0 or (step == total and (self.on_signal or not signalled))


def _guard_run_dir(run: Path, resume: bool) -> None:
    if run.exists() and not run.is_dir():
        raise UserError(f"{run} exists and is not a folder; choose another --out")
    if resume:  # said before the data are read: a missing run is the error to report, not a missing dataset
        if not (run / "config.json").is_file() and ckpt.latest_checkpoint(run) is None:
            raise UserError(f"--resume: no run in {run} (no config.json, no checkpoint)")
        return
    if (run / "config.json").exists() or ckpt.list_checkpoints(run):
        raise UserError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    if run.exists() and any(p.name != RunLock.NAME for p in run.iterdir()):
        raise UserError(f"{run} exists and is not an empty folder; choose another --out")


class RunLock:
    """An exclusive lock on a run dir for as long as one training uses it: a second `train` on the same --out gets
    one line instead of interleaving its metrics and overwriting the first one's checkpoints. It is an flock on
    RUN/.lock, which the kernel releases when the process dies however it dies, so a lock is never stale. A run
    dir that this lock created and nothing else was written to is removed again on exit."""

    NAME = ".lock"

    def __init__(self, run: Path):
        self.run, self.f, self.created = run, None, not run.exists()

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        try:
            self.run.mkdir(parents=True, exist_ok=True)
            self.f = open(self.run / self.NAME, "a+")
        except OSError as e:
            raise UserError(ckpt.write_error(self.run / self.NAME, e)) from None
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.f.seek(0)
            holder = self.f.read().strip() or "?"
            self.f.close()
            raise UserError(f"{self.run} is in use by another training (pid {holder}); wait for it to finish or "
                            "choose another --out") from None
        self.f.seek(0)
        self.f.truncate()
        self.f.write(str(os.getpid()))
        self.f.flush()
        return self

    def __exit__(self, *exc) -> bool:
        if self.f is not None:
            if self.created and [p.name for p in self.run.iterdir()] == [self.NAME]:
                (self.run / self.NAME).unlink(missing_ok=True)  # nothing was written: leave nothing behind
                self.run.rmdir()
            self.f.close()  # releases the flock
        return False


def _open_writer(run: Path, step: int) -> RunWriter:
    with ckpt.writing(run / "metrics.jsonl"):
        return RunWriter(run, purge_step=step)


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


class _StopSignals:
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
                raise KeyboardInterrupt  # the second signal: now
            return
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            # a stopped torchrun worker keeps ignoring the signals until it has left (torchrun's follows)
            signal.signal(s, signal.SIG_IGN if self.signum is not None and not self.second_stops else h)
        return False


# ---------------------------------------------------------------------- the loop


def train(cfg: config_mod.Config, out_dir: str | Path, resume: bool = False, allow_config_change: bool = False,
          progress: bool = True) -> RunResult:
    """Train cfg into the run dir out_dir. Under torchrun every rank calls this; rank 0 alone writes the run dir."""
    run = Path(out_dir)
    cfg = copy.deepcopy(cfg)  # `auto` settings are resolved in it (config.json records what the run trained in)
    d = dist_mod.setup(cfg.train.device)  # joins the process group under torchrun
    try:
        if d.restart > 0:  # torchrun restarted the workers after one failed: go on from the last checkpoint
            resume = resume or d.agree(lambda: (run / "config.json").is_file())
        with contextlib.ExitStack() as stack:
            d.agree(lambda: (_guard_run_dir(run, resume), stack.enter_context(RunLock(run)), None)[-1])
            threads = stack.enter_context(ThreadPolicy(cfg.train.threads, cfg.name))
            return _train(cfg, run, d.device, threads, resume, allow_config_change, progress and d.main, d)
    except TrainingStopped as e:
        if d.on and not d.main and not isinstance(e, PeerLost):
            e.from_rank0 = True  # every rank stopped at the same step for the same reason: rank 0 says it
        raise
    except RuntimeError as e:
        if not (d.on and dist_mod.lost_peer(e)):
            raise
        raise PeerLost(f"rank {d.rank} lost another process of this training ({str(e).splitlines()[0][:160]}); last "
                       f"checkpoint: {ckpt.latest_checkpoint(run) or 'none'} (torchrun --max-restarts restarts them "
                       "all from it; or continue with --resume)") from None
    finally:
        dist_mod.teardown(d)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's own random stream (dropout, instance noise, GP weights, crops) under torchrun."""
    return (seed * 1_000_003 + 7919 * (rank + 1)) % (2**63)


class _NoWriter:
    """What ranks other than 0 write: nothing."""

    def log(self, row) -> None:
        pass

    def image(self, *a) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _prepare_run_dir(cfg, run: Path, resume: bool, allow_config_change: bool, progress: bool, world: int):
    """Rank 0, before the first step: clean up after killed writes, find the state to resume from (None: start at
    step 0), bring the logs back to it, and write the resolved config."""
    removed = ckpt.clean_orphans(run)  # temp files of writes a killed process left (the run dir is locked: ours)
    if removed and progress:
        print(f"removed {len(removed)} unfinished checkpoint file(s) of an interrupted write", file=sys.stderr)
    state = None
    if resume and ckpt.latest_checkpoint(run) is None:  # _guard_run_dir saw its config.json
        # it stopped before its first checkpoint: nothing to restore, so it starts again from step 0
        if progress:
            print(f"{run} has no checkpoint yet: starting it from step 0", file=sys.stderr)
        for p in [run / "metrics.jsonl", *(run / "samples").glob("step-*.png")]:
            p.unlink(missing_ok=True)
        shutil.rmtree(run / "tb", ignore_errors=True)
    elif resume:
        path = ckpt.latest_checkpoint(run)
        state = ckpt.safe_load(path)
        # the run's config with today's defaults for keys added since it was written (they change nothing)
        changes = [c for c in config_mod.diff(config_mod.from_dict(json.loads(state["config"])).to_dict(), cfg.to_dict())
                   if c.split(":")[0] not in RESUMABLE_KEYS]
        if changes and not allow_config_change:
            raise UserError(f"config differs from the run's ({'; '.join(changes[:4])}); "
                            "pass --allow-config-change to resume anyway")
        written = int(state.get("world", 1))
        if written != world:  # each rank's random streams and slice of the batch are in it: the same count only
            raise UserError(f"{path} was written by {written} process{'es' if written > 1 else ''} and this run has "
                            f"{world}: resume it with {written} (torchrun --nproc-per-node / --nnodes), or start a "
                            "new run")
        step = int(state["step"])
        _truncate_metrics(run / "metrics.jsonl", step)
        for p in (run / "samples").glob("step-*.png"):
            if int(p.stem.split("-")[1]) > step:
                p.unlink()
        state["_path"] = str(path)
    with ckpt.writing(run / "config.json"):
        run.mkdir(parents=True, exist_ok=True)
        (run / "samples").mkdir(exist_ok=True)
        _write_json(run / "config.json", cfg.to_dict())  # resolved options, before training starts
    return state


def _train(cfg, run: Path, device, threads: ThreadPolicy, resume: bool, allow_config_change: bool,
           progress: bool, d: dist_mod.Dist | None = None) -> RunResult:
    d = d or dist_mod.Dist(device=device)
    t_cfg = cfg.train
    allocator = keep_freed_memory()  # each step's big tensors reuse freed memory, not fresh zeroed pages

    # ------------------------------------------------------------------ data, recipe, state
    data = load_data(cfg.data.name, cfg.data.split, cfg.data.image_size, cfg.data.channels, cfg.data.limit)
    torch.manual_seed(t_cfg.seed)
    recipe = build_recipe(cfg, data.shape, data)
    # `auto`: bf16 where the device computes it natively and the recipe's nets train well in it
    t_cfg.precision, why = resolve_precision(t_cfg.precision, device, recipe.bf16_auto())
    if t_cfg.memory_format == "auto":
        t_cfg.memory_format = "channels_last" if t_cfg.precision == "bf16" and device.type == "cpu" else "contiguous"
    head = (f"{cfg.name}: {device}, {t_cfg.precision} ({why}), {t_cfg.memory_format}, {threads.describe()}"
            f"{', torch.compile' if t_cfg.compile else ''}, {allocator}")
    fmt = torch.channels_last if t_cfg.memory_format == "channels_last" else torch.contiguous_format
    for m in recipe.nets.values():
        m.to(device, memory_format=fmt)  # the format applies to 4-D (convolution) weights only
    if t_cfg.sync_batchnorm:
        if not (d.on and device.type == "cuda"):
            raise UserError("train.sync_batchnorm is for torchrun on CUDA (SyncBatchNorm has no CPU kernels); on CPU "
                            "each rank normalises its own slice of the batch")
        for n, m in recipe.nets.items():  # the same Parameter and buffer objects, in SyncBatchNorm modules
            recipe.nets[n] = torch.nn.SyncBatchNorm.convert_sync_batchnorm(m)
    if d.on:
        # G's noise and fake labels: one stream every rank shares (the global RNG's state after the nets' init, so
        # N processes draw what one process draws); everything else: the rank's own stream
        shared = torch.Generator(device)
        shared.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state())
        recipe.distribute(d.rank, d.world, shared)
        torch.manual_seed(rank_seed(t_cfg.seed, d.rank))
    phases = recipe.phases()
    draws = sum(p.repeat for p in phases if p.data)  # minibatches per step
    # every image field becomes floats in the nets' range on the device, per batch; labels stay integers.
    # train.batch_size is the global batch: under torchrun each rank takes its own 1/world slice of it
    batches = Batches(data.index_groups, t_cfg.batch_size, t_cfg.seed, device,
                      lambda k, v: v if v.dtype == torch.int64 else
                      to_float(v, cfg.data.range).contiguous(memory_format=fmt if v.dim() == 4 else torch.contiguous_format),
                      rank=d.rank, world=d.world)
    steps_per_epoch = max(1, batches.per_epoch // draws)
    total = t_cfg.steps or t_cfg.epochs * steps_per_epoch
    if total <= 0:
        raise UserError("nothing to do: set --steps or --epochs")
    n_fixed = t_cfg.sample_grid**2 if data.is_image else 2500  # toy frames show 2,500 points (PacGAN's count)
    st = TrainState(recipe, recipe.optimizers(),
                    {n: copy.deepcopy(recipe.nets[n]).requires_grad_(False) for n in recipe.ema_nets}
                    if t_cfg.ema_decay > 0 else {},  # exponential moving average (Yazici et al.; Karras et al.)
                    recipe.preview_inputs(n_fixed, t_cfg.seed, device), batches, dist=d)
    if t_cfg.precision == "fp16":  # float16's range needs the losses scaled; one scaler per optimizer group
        st.scalers = {g: torch.amp.GradScaler(device.type) for g in st.groups}
    # bad evaluation settings fail here, before anything is written to the run dir (rank 0 evaluates)
    evaluator = d.agree(lambda: _Evaluator(cfg, run, data), share=False) if t_cfg.eval_every > 0 else None
    if evaluator is None and t_cfg.eval_every > 0:  # the other ranks: G and the extractor for their share of samples
        evaluator = _Evaluator(cfg, run, data, main=False)
    from_noise = data.is_image and hasattr(recipe, "sample_z")  # G draws images from noise (not a translation)
    valid = monitor_data(cfg) if d.main and t_cfg.parzen_monitor and from_noise else None
    by_parzen = t_cfg.select == "parzen"
    if by_parzen:  # refused before the run dir is touched
        d.agree(lambda: _needs(valid is not None, "train.select=parzen needs the Parzen monitor: images drawn from "
                               f"noise and a validation or test split of '{cfg.data.name}' to score them on"))
    state = d.agree(lambda: _prepare_run_dir(cfg, run, resume, allow_config_change, progress, d.world))
    if state is not None:
        st.load_state_dict(state, device, state["_path"])
    del state
    if st.step >= total:
        return RunResult(run, st.step, total, st.elapsed, ckpt.latest_checkpoint(run))
    if t_cfg.compile:
        # in place: the modules stay themselves (their state_dict keys, the EMA copies, checkpoints unchanged);
        # inductor fuses each net's forward and backward elementwise work (BatchNorm, LeakyReLU, dropout)
        import torch._functorch.config as functorch_config

        # a joint phase runs backward twice over one graph (retain_graph), which donated buffers forbid
        functorch_config.donated_buffer = False
        for m in recipe.nets.values():
            m.compile()

    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(t_cfg.precision)

    def autocast():
        # bf16 / fp16 where train.precision resolved to it (runtime.resolve_precision); weights, optimizer state and
        # the losses (logits cast back by the recipe) stay fp32
        return torch.autocast(device.type, dtype=half or torch.bfloat16, enabled=half is not None)

    if d.on:  # one DistributedDataParallel per network; the recipe sees them inside a step (see `distributed`)
        from torch.nn.parallel import DistributedDataParallel as DDP

        st.ddp = {n: DDP(m, device_ids=[device.index] if device.type == "cuda" else None)
                  for n, m in recipe.nets.items()}
        head += f", {d.world} processes ({d.backend}; global batch {t_cfg.batch_size}, " \
                f"{t_cfg.batch_size // d.world} per process)"
    writer = d.agree(lambda: _open_writer(run, st.step), share=False) if d.on else _open_writer(run, st.step)
    writer = writer or _NoWriter()
    if progress:  # the head of the progress display: what the run computes in, and on how many threads
        print(head, file=sys.stderr, flush=True)
    bar = _progress(total, st.step, progress)
    # what picks best.pt (rank 0 keeps it): the Parzen monitor here, or the evaluator's first fid/kid/is
    best = _Best(run, "parzen/monitor", False) if by_parzen and d.main else \
        (evaluator.best if evaluator is not None else None)
    meter = _Meter()
    watch = _CollapseWatch(run / "metrics.jsonl" if st.step else None) if from_noise else None
    refreshed = [0.0]  # wall time of the last GIF/curves/report rebuild

    def when() -> dict:
        return {"step": st.step, "epoch": round(batches.epoch, 3), "time": round(st.wall(), 2)}

    # ------------------------------------------------------------------ hooks
    def log_row() -> dict:
        row = {**when(), **meter.means(d), "img/s": meter.count * t_cfg.batch_size * draws / meter.seconds()}
        for name, grp in st.groups.items():
            row[f"lr/{name}"] = grp.optimizer.param_groups[0]["lr"]
        if cfg.optim.name == "sgd":
            row["momentum"] = next(iter(st.groups.values())).optimizer.param_groups[0]["momentum"]
        bad = [key for key, v in row.items() if key.startswith("loss/") and not math.isfinite(v)]
        if bad:  # diverged: stop before writing a poisoned checkpoint over good ones
            raise Diverged(f"training diverged: {', '.join(bad)} not finite by step {st.step}; last good "
                           f"checkpoint: {ckpt.latest_checkpoint(run) or 'none'} (try a lower learning rate)")
        if bar is not None:
            bar.set_postfix({**{g: f"{row[f'loss/{g}/total']:.3f}" for g in st.groups if f"loss/{g}/total" in row},
                             **{k: f"{row[k]:.2f}" for k in ("D(x)", "D(G(z))", "critic(x)", "critic(G(z))") if k in row},
                             "img/s": f"{row['img/s']:.0f}"}, refresh=False)
            if t_cfg.max_minutes > 0:  # a time budget: the bar's end is where the budget will stop it
                left = max(0.0, 60.0 * t_cfg.max_minutes - row["time"])
                bar.total = min(total, st.step + int(left * (st.step - step0) / max(st.wall() - st.elapsed, 1e-9)))
        meter.reset()
        return row

    def preview_tick() -> dict | None:
        ranks = d.gather(st.rank_state(device)) if d.on and by_parzen else None  # for best.pt (every rank)
        return d.agree(lambda: preview_rank0(ranks), share=False)  # rank 0 draws and writes; the others wait

    def preview_rank0(ranks) -> dict:
        path = run / "samples" / f"step-{st.step:08d}.png"
        row = when()
        nets = st.nets_for_sampling()
        with _eval_mode(recipe.nets.values(), st.ema.values()), torch.no_grad(), ckpt.writing(path):
            if data.is_image:
                imgs, nrow = recipe.preview(st.fixed, nets)
                save_grid(imgs, path, nrow=nrow)
                if watch is not None:
                    row["samples/spread"], warning = watch(imgs, st.step)
                    if warning:
                        _say(bar, warning)
            else:
                from .viz.toy import toy_frame

                row.update(toy_frame(path, recipe, nets["G"], st.fixed["z"], cfg.data.name, st.step))
            if valid is not None:
                row.update(_parzen_monitor(recipe, nets["G"], valid, t_cfg, st.step, device, cfg.data.range))
                if by_parzen:
                    best.offer(row["parzen/monitor"], st.step, lambda: st.state_dict(cfg, data.shape, device, ranks),
                               {"sigma": row["parzen/monitor_sigma"], "samples": t_cfg.parzen_monitor_samples,
                                "valid": f"{valid.name} {len(valid)} images"})
                    row["parzen/best"] = best.value
            writer.image("samples", path, st.step)
        return row

    def eval_tick() -> dict | None:
        ranks = d.gather(st.rank_state(device)) if d.on else None  # for best.pt (every rank takes part)
        # sharded: each rank makes and featurises its share of the samples; rank 0 scores them all
        with _eval_mode(recipe.nets.values(), st.ema.values()):
            mine = evaluator.features(recipe, st.nets_for_sampling()["G"], st.step, device, (d.rank, d.world))
        parts = d.gather(mine)

        def rank0() -> dict:
            row = evaluator(parts, st.step, lambda: st.state_dict(cfg, data.shape, device, ranks))
            row.update(when())
            if bar is not None:
                bar.write(f"step {st.step}: " + "  ".join(f"{k[5:]} {v:.4g}" for k, v in row.items()
                                                         if k.startswith("eval/")))
            return row

        return d.agree(rank0, share=False)

    def checkpoint_tick() -> None:
        writer.flush()
        bad = non_finite({**recipe.nets, **st.ema})
        if d.max_flags([float(bool(bad))])[0]:  # every rank stops, whichever found it
            raise Diverged(f"training diverged: non-finite weights or buffers in {', '.join(bad) or 'another rank'} at "
                           f"step {st.step}; last good checkpoint: {ckpt.latest_checkpoint(run) or 'none'} "
                           "(try a lower learning rate)")
        if d.on:
            _sync_buffers(st)
        ranks = d.gather(st.rank_state(device)) if d.on else None
        d.agree(lambda: write_checkpoint(ranks))

    def write_checkpoint(ranks) -> None:
        path = ckpt.checkpoint_path(run, st.step)
        ckpt.atomic_save(st.state_dict(cfg, data.shape, device, ranks), path)
        ckpt.prune(run, t_cfg.keep_checkpoints)
        # the GIF, curves and report take seconds to rebuild: at most once a minute, and always at the end
        if st.step == total or time.time() - refreshed[0] > 60:
            with ckpt.writing(run / "progress.gif"):
                make_gif(sorted((run / "samples").glob("step-*.png")), run / "progress.gif")
            with ckpt.writing(run / "curves.png"):
                plot_curves(run / "metrics.jsonl", run / "curves.png", title=f"{cfg.name}: {cfg.model.recipe}")
            with ckpt.writing(run / "report.html"):
                write_report(run)
            refreshed[0] = time.time()

    hooks = [Hook(t_cfg.log_every, log_row), Hook(t_cfg.sample_every or steps_per_epoch, preview_tick, False),
             *([Hook(t_cfg.eval_every, eval_tick, False)] if t_cfg.eval_every > 0 else []),
             Hook(t_cfg.checkpoint_every or steps_per_epoch, checkpoint_tick)]

    def log(row: dict | None) -> None:
        def write() -> None:
            with ckpt.writing(run / "metrics.jsonl"):
                writer.log(row)

        # rank 0 writes (the others may hold no row: rank 0 alone draws the preview); a full disk there stops every
        # rank. Every rank calls this for every due hook, so the collectives stay in step
        d.agree(write)

    # ------------------------------------------------------------------ the loop
    step0 = st.step  # where this invocation started (a resumed run's rate counts only its own steps)
    st.t0 = time.time()
    try:
        with _StopSignals(second_stops=not d.on) as stop:
            if st.step == 0:
                log(preview_tick())
            signum = None  # the stop every rank agreed on at the last step
            while st.step < total:
                threads.refresh()  # a second training started or ended: take this run's share of the cores
                set_hparams(st, cfg, phases, total)
                losses = run_step(st, phases, autocast)
                if st.ema:
                    update_ema(st, t_cfg.ema_decay)
                st.step += 1
                meter.add(losses)
                over = t_cfg.max_minutes > 0 and st.wall() >= 60.0 * t_cfg.max_minutes
                stalled = t_cfg.patience > 0 and best is not None and best.stale(st.step) >= t_cfg.patience
                # this step's stop is read once: a signal handled from here on (as a collective returns, say) counts
                # at the next step, so every rank runs the same hooks and collectives
                signum = stop.signum
                if d.on:  # every rank stops at the same step, whichever got the signal, the budget or the stall
                    sig, over, stalled = d.max_flags([float(signum or 0), float(over), float(stalled)])
                    signum = int(sig) or None
                    stop.signum = stop.signum or signum
                why = None
                if signum is not None or over or stalled:
                    if signum is None and st.step < total and d.main:
                        why = f"time budget of {t_cfg.max_minutes:g} min reached" if over else \
                            f"no better {best.key} for {t_cfg.patience} steps (train.patience)"
                    total = st.step  # this step is the last one: every hook runs, a checkpoint included
                    if bar is not None:
                        bar.total = total
                for i, hook in enumerate(hooks):
                    if hook.due(st.step, total, signum is not None):
                        log(hook.run())
                    if i == 0 and bar is not None:
                        bar.update(1)
                if why is not None:  # said after the last step's hooks: its own monitor or evaluation may be the best
                    kept = best is not None and best.step is not None
                    _say(bar, f"{why}: stopped at step {st.step}" +
                         (f"; the best, {best.value:.4g} at step {best.step}, is in best.pt" if kept else ""))
            if signum is not None:
                name = signal.Signals(signum).name
                raise Interrupted(f"{name} at step {st.step}: checkpoint {ckpt.latest_checkpoint(run)} written "
                                  "(continue with --resume)", 128 + signum)
    except KeyboardInterrupt:  # a second signal, or Ctrl-C where no handler could be installed
        raise Interrupted(f"interrupted at step {st.step}; last checkpoint: {ckpt.latest_checkpoint(run) or 'none'} "
                          "(continue with --resume)", 130) from None
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    return RunResult(run, st.step, total, st.wall(), ckpt.latest_checkpoint(run),
                     {**recipe.nets, **{f"ema/{n}": m for n, m in st.ema.items()}})


class _CollapseWatch:
    """The spread of G's samples over the fixed preview noise (the per-pixel standard deviation across the grid, in
    [0, 1] pixel units, averaged over pixels), logged as `samples/spread` with each preview, and one warning when G
    has collapsed: the spread below a tenth of the largest the run has had (G draws nearly one image), or below half
    of it at two previews in a row (G draws one kind of image). That is how the 2014 GAN fails on some draws: its
    sigmoid outputs run into their flat tails, no gradient reaches G and the samples freeze, onto one image or one
    digit; such a run does not come back. In the README's main job on seeds 0-7 (bench/results/quickstart-seeds.json)
    no run fell under half its best at two previews in a row (at one, seed 3 early on: 0.51; the lowest pair, 0.72
    and 0.76); the run that ended on a single digit (the reverted 16-bit dropout masks, seed 2) sat between 0.12 and
    0.51 of its best from step 2,500 on: the tenth-of-the-best rule alone never warned, the two-previews rule did at
    step 4,000. A run starts near zero spread (G's first samples are all alike), so only a loss of spread once gained
    counts."""

    GAINED = 0.05  # spread a run must have reached before a loss of it counts
    FROZEN = 0.1  # below this share of the best: nearly one image
    LOW, LOW_PREVIEWS = 0.5, 2  # below this share of the best at this many previews in a row: one kind of image

    def __init__(self, metrics: Path | None):
        self.best, self.lows, self.warned = 0.0, 0, False
        if metrics is not None and metrics.is_file():  # resumed: the spreads the run had before
            for line in metrics.read_text().splitlines():
                if '"samples/spread"' in line:
                    self._track(json.loads(line)["samples/spread"])

    @staticmethod
    def spread(x: torch.Tensor) -> float:
        """Per-pixel standard deviation across the samples x (N, ...) in [0, 1], averaged over pixels."""
        return float(x.flatten(1).std(0).mean()) if len(x) > 1 else 0.0

    def _track(self, spread: float) -> None:
        self.best = max(self.best, spread)
        self.lows = self.lows + 1 if self.best >= self.GAINED and spread < self.LOW * self.best else 0

    def __call__(self, imgs: torch.Tensor, step: int) -> tuple[float, str | None]:
        spread = self.spread(imgs.float() / 255.0)
        self._track(spread)
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


class _Meter:
    """Means of every loss term and statistic since the last metrics row."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums: dict[str, float] = {}
        self.count, self.t = 0, time.time()

    def add(self, losses: dict[str, Losses]) -> None:
        # sums stay tensors on the device: reading a value back (float(), .item()) waits for the step's work to
        # finish, and a GPU or a CPU stream would stall at every term of every step; means() reads them all once
        s = self.sums
        for group, ls in losses.items():
            total = 0.0
            for name, v in ls.terms.items():
                v = v.detach()
                s[f"loss/{group}/{name}"] = s.get(f"loss/{group}/{name}", 0.0) + v
                total = total + v
            s[f"loss/{group}/total"] = s.get(f"loss/{group}/total", 0.0) + total
            for name, v in ls.stats.items():
                s[name] = s.get(name, 0.0) + (v.detach() if isinstance(v, torch.Tensor) else v)
        self.count += 1

    def means(self, d: dist_mod.Dist | None = None) -> dict[str, float]:
        """The row's means; under torchrun the means over every rank's slice of the batches (one all-reduce)."""
        keys = list(self.sums)
        if not keys:
            return {}
        dev = next((v.device for v in self.sums.values() if torch.is_tensor(v)), torch.device("cpu"))
        sums = torch.stack([torch.as_tensor(self.sums[k], dtype=torch.float64, device=dev).reshape(()) for k in keys])
        if d is not None:
            sums = d.mean(sums)
        # one read-back for the whole row
        return {k: v / max(self.count, 1) for k, v in zip(keys, sums.cpu().tolist())}

    def seconds(self) -> float:
        return max(time.time() - self.t, 1e-9)


@contextlib.contextmanager
def _eval_mode(*groups_of_modules):
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


def _parzen_monitor(recipe, G, valid, t_cfg, step: int, device, range_: str) -> dict:
    gen = torch.Generator().manual_seed(t_cfg.seed * 7919 + step)  # own stream: training RNG untouched
    z = recipe.sample_z(t_cfg.parzen_monitor_samples, generator=gen).to(device)
    y = recipe.sample_labels(len(z), generator=gen)
    fake = recipe.generate(z, None if y is None else y.to(device), G=G).float().cpu()
    if range_ == "pm1":
        fake = (fake + 1) / 2
    ll = parzen_log_likelihoods(fake, valid.x, PAPER_SIGMAS).mean(1)
    return {"parzen/monitor": float(ll.max()), "parzen/monitor_sigma": float(PAPER_SIGMAS[int(ll.argmax())])}


# ---------------------------------------------------------------------- evaluation during training


class _Evaluator:
    """Scores G every `train.eval_every` steps with the bundled classifier, as `counterfeit evaluate` does.

    The first of fid/kid/is in `train.eval_metrics` picks the best step; its full training state is written
    atomically to run/best.pt (a checkpoint like the others: sample and resume from it) and its scores to best.json.
    """

    def __init__(self, cfg, run: Path, data, main: bool = True):
        from .metrics.evaluate import SELECTORS, real_features, reference_name
        from .metrics.features import load_extractor

        t = cfg.train
        if not data.is_image:
            raise UserError("train.eval_every: evaluation with a classifier needs an image dataset")
        self.metrics = list(t.eval_metrics)
        picks = [m for m in self.metrics if m in SELECTORS]
        selects = t.select == "eval"  # else the Parzen monitor keeps best.pt and these scores are only logged
        if selects and not picks:
            raise UserError(f"train.eval_metrics {self.metrics} has none of {sorted(SELECTORS)} to pick the best step")
        self.ref = reference_name(cfg.data.name)
        self.ex = load_extractor(t.eval_extractor or self.ref)  # fails now, with the reason, not at the first tick
        # the real split's features, computed (or read from the cache) once and held for every tick, by rank 0 alone
        self.real = real_features(self.ex, self.ref) if main else None
        self.n, self.seed = t.eval_samples, t.seed
        self.best = None
        if selects and main:
            self.key, (self.value_of, lower_is_better) = picks[0], SELECTORS[picks[0]]
            self.best = _Best(run, self.key, lower_is_better)

    @torch.no_grad()
    def features(self, recipe, G, step: int, device, part=(0, 1)) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the tick's samples through the extractor (every rank calls it under torchrun)."""
        from .sampling import generate

        fake = generate(recipe, self.n, seed=self.seed * 7919 + step + 1, G=G, device=device, part=part)  # own stream
        return self.ex(fake)

    def __call__(self, parts: list[tuple[torch.Tensor, torch.Tensor]], step: int, state_now) -> dict:
        """Rank 0: the scores of every rank's features (in rank order, the samples one process would make)."""
        from .metrics.evaluate import flat_scores, score_features

        ff, fl = torch.cat([f for f, _ in parts]), torch.cat([g for _, g in parts])
        r = score_features(ff, fl, self.ref, self.metrics, self.ex, self.real, seed=self.seed, n_boot=0)
        row = {"step": step, **{f"eval/{k}": v for k, v in flat_scores(r).items()}}
        if self.best is not None:
            self.best.offer(self.value_of(r), step, state_now, {"scores": flat_scores(r), "n_generated": self.n,
                                                                "provenance": r["provenance"]})
            row["eval/best_" + self.key] = self.best.value
        return row


class _Best:
    """The best step so far by one score: its full training state in run/best.pt (a checkpoint like the others:
    sample and resume from it), the score and step in run/best.json. A resumed run reads best.json back and keeps
    competing with it; `stale(step)` says how many steps have passed without an improvement (train.patience)."""

    def __init__(self, run: Path, key: str, lower_is_better: bool):
        self.run, self.key, self.lower = run, key, lower_is_better
        self.value, self.step = None, None
        if (run / "best.json").is_file():
            b = json.loads((run / "best.json").read_text())
            if b.get("metric") == key:  # a best by another score (train.select changed) starts afresh
                self.value, self.step = b["value"], b["step"]

    def offer(self, value: float, step: int, state_now, extra: dict | None = None) -> bool:
        """Keep step if its value beats the best so far; state_now() makes the checkpoint only then."""
        if self.value is not None and not (value < self.value if self.lower else value > self.value):
            return False
        self.value, self.step = value, step
        ckpt.atomic_save(state_now(), self.run / "best.pt")
        _write_json(self.run / "best.json", {"step": step, "metric": self.key, "value": value, **(extra or {})})
        return True

    def stale(self, step: int) -> int:
        return 0 if self.step is None else step - self.step


# ---------------------------------------------------------------------- small helpers


def _needs(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _say(bar, message: str) -> None:
    """One line for the user: above the progress bar when there is one, else on stderr."""
    if bar is not None:
        bar.write(message)
    else:
        print(message, file=sys.stderr, flush=True)


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
