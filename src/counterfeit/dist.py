"""torch.distributed under torchrun: the process group, the rank helpers, and agreement between ranks.

A training launched by `torchrun` (or `counterfeit train --nproc N`, which hands over to it) finds WORLD_SIZE, RANK,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT in its environment and joins a process group: gloo on CPU, nccl on CUDA
(one GPU per local rank). Without them it is one process and every helper here is a no-op.

The process group's store is a client of the TCPStore that torchrun's agent hosts, under a prefix named by
TORCHELASTIC_RESTART_COUNT: after torchrun restarts the workers (--max-restarts), the new ones find none of the keys
the dead ones left. (torch's own env:// init reuses the agent's store unprefixed; a probe here saw it fail or hang
after a restart.) Outside torchrun, with MASTER_ADDR/PORT set by hand, rank 0 hosts the store.

Rank 0 alone writes files. What it does alone goes through `Dist.run_on_rank0`: the others wait for its outcome and raise
the same error if it failed, so no rank is ever left waiting in a collective for a rank that stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import torch
import torch.distributed as tdist

from . import errors
from .checkpoint import write_failure
from .errors import UserError

TIMEOUT_S = float(os.environ.get("COUNTERFEIT_DIST_TIMEOUT", "600"))  # a collective that waits longer fails


def env_world() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise UserError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


@dataclass
class Dist:
    """This process's place among the ranks of one training."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    restart: int = 0  # how many times torchrun restarted the workers (TORCHELASTIC_RESTART_COUNT)
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns: bool = False  # this Dist joined the process group (and leaves it in teardown)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1

    # ------------------------------------------------------------------ collectives (no-ops in one process)
    def _dev(self) -> torch.device:
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def max_over_ranks(self, values: list[float]) -> list[float]:
        """Each value's maximum over the ranks (a stop signal any rank received, a budget any rank reached)."""
        if not self.on:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._dev())
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return t.tolist()

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean over the ranks of a tensor every rank holds (float64 sums: the order cannot matter much)."""
        if not self.on:
            return t
        out = t.to(self._dev(), torch.float64).clone()
        tdist.all_reduce(out)
        return (out / self.world).to(t.device)

    def gather(self, obj) -> list:
        """Every rank's object, in rank order, on every rank."""
        if not self.on:
            return [obj]
        out = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's object on every rank."""
        if not self.on:
            return obj
        box = [obj if self.main else None]
        tdist.broadcast_object_list(box, src=0, device=self._dev() if self.backend == "nccl" else None)
        return box[0]

    def run_on_rank0(self, fn: Callable[[], object], share: bool = True):
        """Run fn on rank 0 alone; every rank gets its result (share=False: rank 0 only, the others None), or
        raises the exception it raised (a UserError, Diverged, Interrupted... keeps its class and message, so every
        rank exits with the same code)."""
        if not self.on:
            return fn()
        outcome, mine = None, None
        if self.main:
            try:
                mine = fn()
                outcome = ("ok", mine if share else None)
            except BaseException as e:
                # bad input, a stop, or a full disk / read-only folder: one line on every rank
                known = e if isinstance(e, (UserError, errors.TrainingStopped)) else write_failure(e)
                if known is None:  # a bug: the others stop too, rank 0 keeps its traceback
                    self.broadcast(("bug", f"rank 0 failed: {type(e).__name__}: {str(e)[:300]}"))
                    raise
                outcome = ("err", known)
        kind, value = self.broadcast(outcome)
        if kind == "ok":
            return value if share or not self.main else mine
        if kind == "err":
            value.from_rank0 = True  # the CLI says it once, on rank 0
            raise value
        raise RuntimeError(value)

    def barrier(self) -> None:
        if self.on:
            tdist.barrier()


def _store(rank: int, world: int, restart: int):
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        raise UserError(f"WORLD_SIZE={world} but MASTER_ADDR / MASTER_PORT are not set: launch with torchrun "
                        "(or counterfeit train --nproc N)")
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = tdist.TCPStore(addr, int(port), world, is_master=rank == 0 and not agent,
                           timeout=timedelta(seconds=TIMEOUT_S), wait_for_workers=False)
    return tdist.PrefixStore(f"counterfeit/restart-{restart}/", store)


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device '{name}' requested but CUDA is not available on this machine")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UserError(f"unknown device '{name}' (use cpu or cuda)")
    return torch.device(name)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of a rank's own random stream (dropout, instance noise, GP weights, crops) under torchrun."""
    return (seed * 1_000_003 + 7919 * (rank + 1)) % (2**63)


def setup(device_name: str) -> Dist:
    """Join the process group when torchrun started this process; resolve the device either way."""
    world = env_world()
    device = resolve_device(device_name)
    if world <= 1:
        return Dist(device=device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    if device.type == "cuda":
        if torch.cuda.device_count() < local_world:
            raise UserError(f"{local_world} processes on this machine but {torch.cuda.device_count()} CUDA device(s): "
                            "one GPU per process (--nproc-per-node at most the GPU count)")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    owns = not tdist.is_initialized()  # a caller that joined it already (a script training several runs) keeps it
    if owns:
        tdist.init_process_group(backend, store=_store(rank, world, restart), rank=rank, world_size=world,
                                 timeout=timedelta(seconds=TIMEOUT_S))
    return Dist(rank, world, local_rank, local_world, restart, device, backend, owns)


def teardown(d: Dist) -> None:
    if d.owns and tdist.is_initialized():
        tdist.destroy_process_group()


_LOST = ("Connection reset", "Connection closed", "Broken pipe", "connection refused", "Socket Timeout",
         "timed out", "NCCL communicator was aborted", "Connection refused")


def lost_peer(e: BaseException) -> bool:
    """Whether a collective failed because another rank is gone (killed, crashed, or past the timeout)."""
    return isinstance(e, RuntimeError) and (isinstance(e, getattr(tdist, "DistError", ())) or
                                            any(k.lower() in str(e).lower() for k in _LOST))
