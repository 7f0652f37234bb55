"""TrainState: everything a checkpoint holds and a resume restores; the moving averages (EMA) of the networks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .. import checkpoint as ckpt
from .. import dist as dist_mod
from ..data.sampler import Batches
from ..errors import UserError
from ..recipes import Recipe


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
        """The recipe's networks with each EMA copy in its network's place: what sampling uses."""
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


    def non_finite(self) -> list[str]:
        """Networks (EMA copies included) with a NaN or inf in a parameter or a float buffer (BatchNorm's variance)."""
        nets = {**self.recipe.nets, **self.ema}
        return [n for n, m in nets.items()
                if not all(torch.isfinite(t).all() for t in m.state_dict().values() if t.is_floating_point())]

    @torch.no_grad()
    def sync_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm running statistics) on every rank, before a checkpoint: DDP broadcasts them at
        each forward anyway, so training is unchanged, and every rank then holds exactly what the checkpoint holds."""
        import torch.distributed as tdist

        for m in [*self.recipe.nets.values(), *self.ema.values()]:
            for b in m.buffers():
                if self.dist.backend == "gloo" and b.device.type != "cpu":
                    continue
                tdist.broadcast(b, src=0)


@torch.no_grad()
def update_ema(st: TrainState, decay: float) -> None:
    # warm-up as TensorFlow's ExponentialMovingAverage(num_updates): early on the average would otherwise be
    # mostly the random initial weights
    d = min(decay, (1.0 + st.step) / (10.0 + st.step))
    for name, avg in st.ema.items():
        net = st.recipe.nets[name]
        for pe, p in zip(avg.parameters(), net.parameters()):
            pe.lerp_(p, 1.0 - d)  # pe <- d * pe + (1 - d) * p
        for be, b in zip(avg.buffers(), net.buffers()):
            be.copy_(b)
