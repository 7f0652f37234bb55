"""One index sampler for every in-memory dataset, and the minibatches it draws as dicts of named tensors.

The order of an epoch is a pure function of (seed, epoch), so a resumed run finds its place from the count of
batches drawn. Under several processes each rank takes its own contiguous slice of every global batch: in one
process the order is exactly the single-process order, and ranks never share an example within a batch.
"""

from __future__ import annotations

import torch

from ..errors import UserError


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """A fresh shuffle of range(n) for this epoch: (n,) int64."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batch_indices(order: torch.Tensor, i: int, batch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """Batch i of an epoch's order for one rank: global batch rows [i*batch, (i+1)*batch), this rank's slice."""
    rows = order[i * batch : (i + 1) * batch]
    per = batch // world
    return rows[rank * per : (rank + 1) * per]


class Batches:
    """Draws minibatches {field: tensor} from in-memory fields, grouped by the index they share.

    groups  [{"x": (N, C, H, W) uint8, "y": (N,) int64}] for a labelled set; a paired translation set shares one
            index between its domains ([{"A", "B"}]); unpaired domains have one each ([{"A"}, {"B"}]), each with its
            own shuffle (group g's epochs are seeded by seed + g * 7919), so no pair is ever fixed;
    to_batch(field, tensor) turns a drawn field into what the nets take (floats, on the device).
    `drawn` counts batches since the start of the run, so the position resumes exactly. An epoch is an epoch of the
    first group; a shorter or longer group wraps around on its own.
    """

    def __init__(self, groups: list[dict[str, torch.Tensor]], batch: int, seed: int, device, to_batch,
                 rank: int = 0, world: int = 1, drawn: int = 0):
        if batch % world:
            raise UserError(f"train.batch_size {batch} is not divisible by the {world} processes")
        self.groups, self.sizes = [], []
        for fields in groups:
            n = len(next(iter(fields.values())))
            if any(len(v) != n for v in fields.values()):
                raise UserError(f"paired fields differ in length: { {k: len(v) for k, v in fields.items()} }")
            if n < batch:
                raise UserError(f"train.batch_size {batch} is larger than the dataset ({n} examples)")
            self.groups.append({k: v.to(device) for k, v in fields.items()})
            self.sizes.append(n)
        self.n = self.sizes[0]
        self.per_epoch = self.n // batch
        self.batch, self.seed, self.device, self.to_batch = batch, seed, device, to_batch
        self.rank, self.world, self.drawn = rank, world, drawn
        self._orders: dict[int, tuple[int, torch.Tensor]] = {}

    @property
    def epoch(self) -> float:
        return self.drawn / self.per_epoch

    def next(self) -> dict[str, torch.Tensor]:
        out = {}
        for g, (fields, n) in enumerate(zip(self.groups, self.sizes)):
            epoch, i = divmod(self.drawn, n // self.batch)
            if g not in self._orders or self._orders[g][0] != epoch:
                self._orders[g] = (epoch, epoch_order(n, self.seed + g * 7919, epoch))
            idx = batch_indices(self._orders[g][1], i, self.batch, self.rank, self.world).to(self.device)
            out.update({k: self.to_batch(k, v[idx]) for k, v in fields.items()})
        self.drawn += 1
        return out
