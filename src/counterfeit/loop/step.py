"""One training step (the recipe's phases in order) and the closed-form schedules a resumed run sets exactly.

A phase draws a minibatch (a dict of tensors) or reuses the step's last one, asks the recipe for each optimizer
group's loss terms, runs backward() and steps that group's optimizer. A joint phase (the 2014 code's simultaneous
update) takes every group's gradient from one forward pass: backward(inputs=the group's parameters) for each, never
torch.autograd.grad into .grad, which bypasses DDP's hooks.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from ..recipes import Losses
from .state import TrainState


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


def updates_per_step(phases, group: str) -> int:
    return sum(p.repeat for p in phases if group in p.groups)


def set_hparams(st: TrainState, cfg, phases, total: int) -> None:
    """Each group's learning rate from its update count, SGD's momentum from the epoch: a resumed run sets both."""
    o = cfg.optim
    st.recipe.step = st.step
    epoch = st.batches.drawn // st.batches.per_epoch
    for name, grp in st.groups.items():
        lr = lr_at(grp.lr, st.step * updates_per_step(phases, name), o.lr_decay, o.min_lr)
        for g in grp.optimizer.param_groups:
            g["lr"] = lr * linear_decay(st.step, o.linear_decay_start, total)
            if o.name == "sgd":
                g["momentum"] = momentum_at(o, epoch)


def autocast_for(device: torch.device, precision: str):
    """A factory of autocast contexts: bf16 / fp16 where train.precision resolved to it; weights, optimizer state and
    the losses (logits cast back by the recipe) stay fp32."""
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return functools.partial(torch.autocast, device.type, dtype=half or torch.bfloat16, enabled=half is not None)


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
    batch, out = None, {}
    for phase in phases:
        for _ in range(phase.repeat):
            if phase.data or batch is None:
                batch = st.batches.next()  # {"x": (B, C, H, W) float, "y": (B,) ...}
            with frozen(st.recipe.nets, phase.freeze), distributed(st, phase):
                with autocast():
                    losses = st.recipe.losses(phase.name, batch)
                backward_and_step(st, phase, losses)
        out.update(losses)
    return out


def backward_and_step(st: TrainState, phase, losses: dict[str, Losses]) -> None:
    """Zero the phase's groups, backward each group's summed terms, step its optimizer (through its fp16 scaler)."""
    groups = [st.groups[g] for g in phase.groups]
    for grp in groups:
        grp.optimizer.zero_grad(set_to_none=True)
    for i, (g, grp) in enumerate(zip(phase.groups, groups)):
        loss = sum(losses[g].terms.values())
        loss = st.scalers[g].scale(loss) if st.scalers else loss
        if len(groups) == 1:
            loss.backward()
        else:  # joint: each group's gradient from its own losses, over the one shared graph
            loss.backward(inputs=st.recipe.group_params(grp), retain_graph=i < len(groups) - 1)
    for g, grp in zip(phase.groups, groups):
        if st.scalers:
            st.scalers[g].step(grp.optimizer)
            st.scalers[g].update()
        else:
            grp.optimizer.step()
    st.recipe.after_step(phase.name)
