"""build(): everything the loop needs, made in named steps, in the order that keeps runs reproducible (the global
random stream is seeded before the networks are made) and refuses bad input before the run dir is touched."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import dist as dist_mod
from ..data import ImageData, load_data, to_float
from ..data.sampler import Batches
from ..errors import UserError
from ..hooks import (Artefacts, Best, Checkpoint, Evaluation, Evaluator, Hooks, MetricsRow, ParzenMonitor, Preview,
                     monitor_data)
from ..recipes import build_recipe
from ..runtime import ThreadPolicy, keep_freed_memory, resolve_precision
from .rundir import prepare_run_dir, read_resume
from .state import TrainState
from .step import autocast_for
from .writer import Meter, NoWriter, Progress


@dataclass
class Loop:
    """One training as the loop body and its hooks see it."""

    cfg: object  # the Config, with its `auto` settings resolved
    run: Path
    data: ImageData
    state: TrainState
    phases: list
    total: int  # the last step (an early stop moves it to the stop step)
    steps_per_epoch: int
    draws: int  # minibatches per step
    hooks: Hooks
    best: Best | None  # what train.patience watches
    threads: ThreadPolicy
    head: str  # what the run computes in, said above the progress bar
    writer: object = field(default_factory=NoWriter)
    progress: Progress = field(default_factory=Progress)
    meter: Meter = field(default_factory=Meter)
    step0: int = 0  # where this invocation started (a resumed run's speed counts only its own steps)
    signals: object = None  # the StopSignals of fit(), while it runs

    def stop_asked(self) -> bool:
        """A SIGINT / SIGTERM has come and not been acted on yet (a slow hook may stop early)."""
        return self.signals is not None and self.signals.signum is not None

    @property
    def dist(self) -> dist_mod.Dist:
        return self.state.dist

    @property
    def device(self) -> torch.device:
        return self.state.dist.device

    def when(self) -> dict:
        st = self.state
        return {"step": st.step, "epoch": round(st.batches.epoch, 3), "time": round(st.wall(), 2)}

    @property
    def autocast(self):
        """A factory of the step's autocast contexts (a no-op in fp32)."""
        return autocast_for(self.device, self.cfg.train.precision)

    def checkpoint_state(self, ranks: list[dict] | None = None):
        """A function that makes the checkpoint of this moment (called only when it is to be written)."""
        return functools.partial(self.state.state_dict, self.cfg, self.data.shape, self.device, ranks)



def build(cfg, run: Path, d: dist_mod.Dist, threads: ThreadPolicy, resume: bool, allow_config_change: bool,
          progress: bool, extra_hooks=()) -> Loop:
    """The loop of cfg in run, its state restored where it resumes. Writes nothing before every check has passed."""
    allocator = keep_freed_memory()  # each step's big tensors reuse freed memory, not fresh zeroed pages
    data = load_data(cfg.data.name, cfg.data.split, cfg.data.image_size, cfg.data.channels, cfg.data.limit)
    torch.manual_seed(cfg.train.seed)
    recipe = build_recipe(cfg, data.shape, data)
    why = place_nets(cfg, recipe, d)
    phases = recipe.phases()
    draws = sum(p.repeat for p in phases if p.data)
    batches = make_batches(cfg, data, d)
    steps_per_epoch = max(1, batches.per_epoch // draws)
    total = cfg.train.steps or cfg.train.epochs * steps_per_epoch
    if total <= 0:
        raise UserError("nothing to do: set --steps or --epochs")
    st = make_state(cfg, recipe, data, batches, d)
    hooks, best = make_hooks(cfg, run, data, recipe, d, steps_per_epoch, extra_hooks)
    restore(st, d.run_on_rank0(functools.partial(read_resume, cfg, run, resume, allow_config_change, d.world)),
            total)
    if st.step < total:  # every check has passed: now the run dir may change
        d.run_on_rank0(functools.partial(prepare_run_dir, cfg, run, resume, st.step, progress))
    t = cfg.train
    head = (f"{cfg.name}: {d.device}, {t.precision} ({why}), {t.memory_format}, {threads.describe()}"
            f"{', torch.compile' if t.compile else ''}, {allocator}")
    return Loop(cfg, run, data, st, phases, total, steps_per_epoch, draws, hooks, best, threads, head)


def restore(st: TrainState, state: dict | None, total: int) -> None:
    """The resumed state into st (refused in one line where it does not fit), and a length that goes forward."""
    if state is None:
        return
    st.load_state_dict(state, st.dist.device, state["_path"])
    if st.step > total:
        raise UserError(f"the run is at step {st.step}, past the {total} steps asked for: give more --steps (or "
                        "--epochs) to continue it")


def place_nets(cfg, recipe, d: dist_mod.Dist) -> str:
    """Resolve `auto` precision and memory format, move the networks to the device in that format, convert them to
    SyncBatchNorm where asked, and give each rank its random streams. Returns why the precision was chosen."""
    t, device = cfg.train, d.device
    t.precision, why, t.memory_format = resolve_auto(cfg, recipe, device)
    for m in recipe.nets.values():
        m.to(device, memory_format=memory_format(cfg))  # the format applies to 4-D (convolution) weights only
    if t.sync_batchnorm:
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
        torch.manual_seed(dist_mod.rank_seed(t.seed, d.rank))
    return why


def resolve_auto(cfg, recipe, device) -> tuple[str, str, str]:
    """(precision, why, memory format) for this machine: `auto` precision is bf16 where the device computes it
    natively and the recipe's nets train well in it; `auto` memory format is channels_last under bf16 on a CPU."""
    t = cfg.train
    precision, why = resolve_precision(t.precision, device, recipe.bf16_auto())
    fmt = t.memory_format
    if fmt == "auto":
        fmt = "channels_last" if precision == "bf16" and device.type == "cpu" else "contiguous"
    return precision, why, fmt


def memory_format(cfg) -> torch.memory_format:
    return torch.channels_last if cfg.train.memory_format == "channels_last" else torch.contiguous_format


def make_batches(cfg, data: ImageData, d: dist_mod.Dist) -> Batches:
    """Every image field becomes floats in the nets' range on the device, per batch; labels stay integers.
    train.batch_size is the global batch: under torchrun each rank takes its own 1/world slice of it."""
    return Batches(data.index_groups, cfg.train.batch_size, cfg.train.seed, d.device,
                   functools.partial(batch_field, cfg.data.range, memory_format(cfg)), rank=d.rank, world=d.world)


def batch_field(range_: str, fmt, key: str, v: torch.Tensor) -> torch.Tensor:
    if v.dtype == torch.int64:
        return v
    return to_float(v, range_).contiguous(memory_format=fmt if v.dim() == 4 else torch.contiguous_format)


def make_state(cfg, recipe, data: ImageData, batches: Batches, d: dist_mod.Dist) -> TrainState:
    """The training state at step 0: optimizer groups, EMA copies, the preview's fixed inputs, fp16 scalers."""
    t = cfg.train
    n_fixed = t.sample_grid**2 if data.is_image else 2500  # toy frames show 2,500 points (PacGAN's count)
    ema = {n: copy.deepcopy(recipe.nets[n]).requires_grad_(False) for n in recipe.ema_nets} if t.ema_decay > 0 else {}
    st = TrainState(recipe, recipe.optimizers(), ema, recipe.preview_inputs(n_fixed, t.seed, d.device), batches,
                    dist=d)
    if t.precision == "fp16":  # float16's range needs the losses scaled; one scaler per optimizer group
        st.scalers = {g: torch.amp.GradScaler(d.device.type) for g in st.groups}
    return st


def make_hooks(cfg, run: Path, data: ImageData, recipe, d: dist_mod.Dist, steps_per_epoch: int, extra=()):
    """The side jobs in the order they run after a step, and the Best that train.patience watches. Bad evaluation
    or selection settings are refused here, before the run dir is touched."""
    t = cfg.train
    evaluator = None
    if t.eval_every > 0:  # rank 0 evaluates; the others make G's samples for their share
        evaluator = d.run_on_rank0(functools.partial(Evaluator, cfg, run, data), share=False) or \
            Evaluator(cfg, run, data, main=False)
    from_noise = data.is_image and hasattr(recipe, "sample_z")  # G draws images from noise (not a translation)
    valid = monitor_data(cfg) if d.main and t.parzen_monitor and from_noise else None
    by_parzen = t.select == "parzen"
    if by_parzen:
        d.run_on_rank0(functools.partial(needs, valid is not None, "train.select=parzen needs the Parzen monitor: images "
                                  f"drawn from noise and a validation or test split of '{cfg.data.name}' to score "
                                  "them on"))
    best = (Best(run, "parzen/monitor", False) if d.main else None) if by_parzen else \
        (evaluator.best if evaluator is not None else None)
    sample_every, checkpoint_every = t.sample_every or steps_per_epoch, t.checkpoint_every or steps_per_epoch
    hooks = [MetricsRow(t.log_every), Preview(sample_every, watch=from_noise)]
    if t.parzen_monitor and from_noise:
        hooks.append(ParzenMonitor(sample_every, valid, best, selects=by_parzen))
    if evaluator is not None:
        hooks.append(Evaluation(t.eval_every, evaluator))
    hooks += [Checkpoint(checkpoint_every, t.keep_checkpoints), Artefacts(checkpoint_every), *extra]
    return Hooks(hooks), best


def needs(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)
