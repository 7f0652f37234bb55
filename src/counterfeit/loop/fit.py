"""train(cfg, out): the one training loop every recipe runs on, and its body, fit(), that reads top to bottom.

Resume restores weights, optimizers, EMA, the recipe's own state, RNG state and the position in the data, so N steps
+ resume to 2N equals 2N uninterrupted steps bit for bit on CPU. Exit paths besides success: bad input raises
UserError (exit 2, nothing written); divergence raises Diverged (exit 3) before a poisoned checkpoint is written;
SIGINT / SIGTERM finish the current step, write a checkpoint and raise Interrupted (exit 130 / 143); a second
signal stops at once.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import checkpoint as ckpt
from .. import config as config_mod
from .. import dist as dist_mod
from ..errors import Interrupted, PeerLost, TrainingStopped
from ..runtime import ThreadPolicy
from .rundir import claim
from .setup import Loop, build
from .state import update_ema
from .step import run_step, set_hparams
from .stopping import Stop, Stopping, StopSignals
from .writer import Progress, open_writer


@dataclass
class RunResult:
    run_dir: Path
    step: int
    total_steps: int
    wall_s: float
    checkpoint: Path | None
    nets: dict = field(default_factory=dict)  # the trained networks ({"G", "D", "ema/G"...}), as they ended


def train(cfg: config_mod.Config, out_dir: str | Path, resume: bool = False, allow_config_change: bool = False,
          progress: bool = True, hooks=()) -> RunResult:
    """Train cfg into the run dir out_dir, running `hooks` (hooks.Hook) after the built-in side jobs. Under torchrun
    every rank calls this; rank 0 alone writes the run dir."""
    run = Path(out_dir)
    cfg = copy.deepcopy(cfg)  # `auto` settings are resolved in it (config.json records what the run trained in)
    d = dist_mod.setup(cfg.train.device)  # joins the process group under torchrun
    try:
        if d.restart > 0:  # torchrun restarted the workers after one failed: go on from the last checkpoint
            resume = resume or d.run_on_rank0(functools.partial(has_config, run))
        with contextlib.ExitStack() as stack:
            d.run_on_rank0(functools.partial(claim, run, resume, stack))
            threads = stack.enter_context(ThreadPolicy(cfg.train.threads, cfg.name))
            loop = build(cfg, run, d, threads, resume, allow_config_change, progress and d.main, hooks)
            return result(loop, False) if loop.state.step >= loop.total else fit(start(loop, progress and d.main))
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


def has_config(run: Path) -> bool:
    return (run / "config.json").is_file()


def start(loop: Loop, progress: bool) -> Loop:
    """What a run that has steps to go needs beyond its state: compiled nets, DDP wrappers, the writer, the bar."""
    cfg, st, d = loop.cfg, loop.state, loop.dist
    if cfg.train.compile:
        # in place: the modules stay themselves (their state_dict keys, the EMA copies, checkpoints unchanged)
        import torch._functorch.config as functorch_config

        functorch_config.donated_buffer = False  # a joint phase runs backward twice over one graph (retain_graph)
        for m in st.recipe.nets.values():
            m.compile()
    if d.on:  # one DistributedDataParallel per network; the recipe sees them inside a step (step.distributed)
        from torch.nn.parallel import DistributedDataParallel as DDP

        st.ddp = {n: DDP(m, device_ids=[d.device.index] if d.device.type == "cuda" else None)
                  for n, m in st.recipe.nets.items()}
        loop.head += f", {d.world} processes ({d.backend}; global batch {cfg.train.batch_size}, " \
                     f"{cfg.train.batch_size // d.world} per process)"
    loop.writer = d.run_on_rank0(functools.partial(open_writer, loop.run, st.step), share=False) or loop.writer
    if progress:  # the head of the progress display: what the run computes in, and on how many threads
        print(loop.head, file=sys.stderr, flush=True)
    loop.progress = Progress(loop.total, st.step, progress)
    loop.hooks.start(loop)
    return loop


def fit(loop: Loop) -> RunResult:
    """The loop body: a step, the side jobs due after it, and an agreed early stop."""
    st, cfg = loop.state, loop.cfg
    autocast = loop.autocast
    loop.step0, st.t0 = st.step, time.time()
    loop.meter.reset()
    try:
        with StopSignals(second_stops=not loop.dist.on) as signals:
            loop.signals = signals
            stopping = Stopping(cfg.train.max_minutes, cfg.train.patience, signals, loop.dist)
            if st.step == 0:
                loop.hooks.run(loop, first=True)  # the untrained generator's grid
            stop = Stop()
            while st.step < loop.total:
                loop.threads.refresh()  # a second training started or ended: take this run's share of the cores
                set_hparams(st, cfg, loop.phases, loop.total)
                losses = run_step(st, loop.phases, autocast)
                if st.ema:
                    update_ema(st, cfg.train.ema_decay)
                st.step += 1
                loop.meter.add(losses)
                stop = stopping.check(st, loop.best, loop.total)
                if stop.now:  # this step is the last one: every hook runs, a checkpoint included
                    loop.total = st.step
                    loop.progress.end_at(st.step)
                loop.hooks.run(loop, signalled=stop.signum is not None)
                loop.progress.update()
                if stop.why:  # said after the step's hooks: its own monitor or evaluation may be the best
                    loop.progress.say(stopped(loop, stop.why))
            if stop.signum is not None:
                raise Interrupted(f"{signal.Signals(stop.signum).name} at step {st.step}: checkpoint "
                                  f"{ckpt.latest_checkpoint(loop.run)} written (continue with --resume)",
                                  128 + stop.signum)
    except KeyboardInterrupt as e:  # a second signal, or Ctrl-C where no handler could be installed
        code = 128 + getattr(e, "signum", signal.SIGINT)
        raise Interrupted(f"interrupted at step {st.step}; last checkpoint: "
                          f"{ckpt.latest_checkpoint(loop.run) or 'none'} (continue with --resume)", code) from None
    finally:
        loop.writer.close()
        loop.progress.close()
    return result(loop, True)


def stopped(loop: Loop, why: str) -> str:
    best = loop.best
    kept = best is not None and best.step is not None
    return f"{why}: stopped at step {loop.state.step}" + \
        (f"; the best, {best.value:.4g} at step {best.step}, is in best.pt" if kept else "")


def result(loop: Loop, trained: bool) -> RunResult:
    """What train() returns; `trained`: this invocation ran steps (else the run had already reached its end)."""
    st = loop.state
    if not trained:
        return RunResult(loop.run, st.step, loop.total, st.elapsed, ckpt.latest_checkpoint(loop.run))
    nets = {**st.recipe.nets, **{f"ema/{n}": m for n, m in st.ema.items()}}
    return RunResult(loop.run, st.step, loop.total, st.wall(), ckpt.latest_checkpoint(loop.run), nets)
