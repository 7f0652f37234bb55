"""What a run tells the world while it trains: metrics rows (metrics.jsonl and TensorBoard), the progress bar and
one-line messages. Rank 0 writes; the other ranks hold a NoWriter and no bar."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from .. import dist as dist_mod
from ..recipes import Losses


class RunWriter:
    """metrics.jsonl rows and TensorBoard events of a run: every file the loop writes besides checkpoints and
    images goes through here."""

    def __init__(self, run: Path, purge_step: int):
        self.f = open(run / "metrics.jsonl", "a")
        self.tb = tensorboard(run, purge_step)
        self.tb_dir = run / "tb"

    def log(self, row: dict | None) -> None:
        if not row:
            return
        self.f.write(json.dumps(row) + "\n")
        if self.tb is not None:
            with ckpt.writing(self.tb_dir):  # a failed write in TensorBoard's thread surfaces here: one line
                for key, v in row.items():
                    if key not in ("step", "epoch", "time") and isinstance(v, (int, float)):
                        self.tb.add_scalar(key, v, row["step"])

    def image(self, tag: str, path: Path, step: int) -> None:
        if self.tb is not None:
            with ckpt.writing(self.tb_dir):
                self.tb.add_image(tag, np.array(read_png(path)), step, dataformats="HWC")

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        self.f.close()
        if self.tb is not None:
            try:
                self.tb.close()
            except OSError:  # its events since the last write are lost; metrics.jsonl holds every row
                pass


class NoWriter:
    """What ranks other than 0 write: nothing."""

    def log(self, row) -> None:
        pass

    def image(self, *a) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def open_writer(run: Path, step: int) -> RunWriter:
    with ckpt.writing(run / "metrics.jsonl"):
        return RunWriter(run, purge_step=step)


def quiet_tensorboard_thread(args) -> None:
    """threading.excepthook: TensorBoard's writer thread keeps a failed write (a full disk) and hands it to the next
    call on the main thread, where it becomes one line; its traceback on stderr as the thread dies says nothing more."""
    if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(args.exc_value, OSError) and \
            ckpt.write_failure(args.exc_value) is not None:
        return
    _THREAD_HOOK(args)


_THREAD_HOOK = threading.excepthook


def tensorboard(run: Path, purge_step: int):
    if os.environ.get("COUNTERFEIT_NO_TENSORBOARD"):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    threading.excepthook = quiet_tensorboard_thread
    # a resumed run keeps the events of its checkpoint's own step: only those after it are the dead run's to drop
    return SummaryWriter(str(run / "tb"), purge_step=purge_step + 1 if purge_step else None)


def read_png(path: Path):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB").copy()


class Meter:
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


class Progress:
    """The progress bar (rank 0, when asked for) and the lines said above it. tqdm.auto: a widget in a notebook,
    text in a terminal."""

    SHOWN = ("D(x)", "D(G(z))", "critic(x)", "critic(G(z))")  # beside each group's total loss

    def __init__(self, total: int = 0, initial: int = 0, enabled: bool = False):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5,
                            smoothing=0.05)

    def say(self, message: str) -> None:
        """One line for the user: above the bar when there is one, else on stderr."""
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        """A line worth seeing only beside the bar (an evaluation's scores: they are in metrics.jsonl anyway)."""
        if self.bar is not None:
            self.bar.write(message)

    def show(self, row: dict, groups) -> None:
        """A metrics row's losses, D's outputs and speed beside the bar."""
        if self.bar is not None:
            self.bar.set_postfix({**{g: f"{row[f'loss/{g}/total']:.3f}" for g in groups if f"loss/{g}/total" in row},
                                  **{k: f"{row[k]:.2f}" for k in self.SHOWN if k in row},
                                  "img/s": f"{row['img/s']:.0f}"}, refresh=False)

    def end_at(self, total: int) -> None:
        if self.bar is not None:
            self.bar.total = total

    def update(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
