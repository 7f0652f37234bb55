"""Checkpoints: atomic save, safe load, everything needed to continue a run exactly.

A checkpoint is a torch.save'd dict of tensors and plain Python values only, loaded with
torch.load(weights_only=True): loading never executes code. Format 2 holds, by name, what the recipe declares:
    nets {name: state_dict}, opts {group: state_dict}, ema {name: state_dict}, recipe {its own state},
    fixed {preview inputs}, step, batches, elapsed, rng_cpu, rng_cuda, config (JSON), shape.
Format 1 (before named networks: flat G / D / optG / optD / G_ema / fixed_z) is read and upgraded in memory. It is written to a temp file in the same folder,
flushed to disk and renamed over the target, so a crash mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from .errors import UserError

FORMAT = 2
_NAME = re.compile(r"^step-(\d+)\.pt$")


def atomic_save(obj, path: Path, again: str = "--resume") -> None:
    """Write `obj` to `path` through a temp file and a rename. A full disk or an unwritable folder is a UserError that
    names the folder and the space needed; no partial file is left and the previous file at `path` is untouched."""
    buf = io.BytesIO()
    torch.save(obj, buf)  # serialised first: the size is known before the disk is touched
    atomic_write(path, buf.getbuffer(), again)


def write_json(path: Path, obj) -> None:
    """A JSON file (a run's config, best.json), written atomically like a checkpoint."""
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def atomic_write(path: Path, data, again: str = "--resume") -> None:
    """`data` (bytes) to `path`: a unique temp file in the same folder, fsync, rename over the target."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(path.parent).free
        if free < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~umask())  # mkstemp makes 0600; the run's other files follow the umask
        os.replace(tmp, path)
    except OSError as e:
        raise UserError(write_error(path, e, len(data), again)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def umask() -> int:
    """The process's umask, read without setting it (os.umask would change it for every thread meanwhile)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write_error(path: Path, e: OSError, size: int | None = None, again: str = "--resume") -> str:
    """One line for a failed write: what, where, why, and on a full disk how much space it needed and what to do
    then (`again`: --resume for a run's files, 'run it again' for a command's output)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f", {shutil.disk_usage(Path(path).parent).free / 1e6:.1f} MB free"
        except OSError:
            free = ""
        need = f" ({size / 1e6:.1f} MB needed{free})" if size else ""
        return f"cannot write {path}: no space left in {Path(path).parent}{need}; free some space and {again}"
    return f"cannot write {path}: {e.strerror or e}"


# errors of writing that are the machine's state, never a bug: a full disk or quota, a read-only or forbidden place
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


# and, where the failing call is known to be a write, a folder that is missing or is a file
WRITE_PATH_ERRNOS = WRITE_ERRNOS | {errno.ENOENT, errno.ENOTDIR, errno.EISDIR}


def write_failure(e: BaseException, path: Path | str | None = None, errnos=WRITE_ERRNOS,
                  again: str = "--resume") -> UserError | None:
    """A failed write as one line (a UserError naming the file and folder), or None for another exception."""
    if isinstance(e, OSError) and e.errno in errnos:  # the output as the caller names it (not a temp file of it)
        return UserError(write_error(Path(path or e.filename or "the output"), e, again=again))
    return None


OUTPUT = "run it again"  # what a command's output (sample, translate, evaluate --json, export) says after a full disk


@contextlib.contextmanager
def writing(path: Path | str, again: str = "--resume"):
    """Writes of `path` (a grid, the GIF, a report, metrics rows, a sample file): a full disk or a read-only folder
    ends in one line naming it instead of a traceback."""
    try:
        yield
    except OSError as e:
        err = write_failure(e, path, WRITE_PATH_ERRNOS, again)
        if err is None:
            raise
        raise err from None


def clean_orphans(run_dir: Path) -> list[Path]:
    """Remove the temp files of checkpoint writes that a killed process left behind (call with the run dir locked)."""
    d = Path(run_dir) / "checkpoints"
    gone = [p for p in d.glob(".*.tmp")] if d.is_dir() else []
    for p in gone:
        p.unlink(missing_ok=True)
    return gone


def safe_load(path: Path) -> dict:
    """Load a checkpoint without executing code; any damage is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, wrong format ...
        if "weights_only" in str(e) or "Weights only" in str(e):  # never pass on torch's advice to unpickle it
            raise UserError(f"cannot read checkpoint {path}: it holds Python objects besides tensors and plain "
                            "values; loading them could run code, so it is refused") from None
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot read checkpoint {path}: {msg[:200]}") from None
    if isinstance(obj, dict) and obj.get("format") == 1 and "G" in obj:
        return upgrade_format1(obj)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(obj.get("nets"), dict):
        raise UserError(f"{path} is not a counterfeit checkpoint (format 1 or {FORMAT})")
    return obj


def upgrade_format1(old: dict) -> dict:
    """A format-1 checkpoint (one G, one D) in the format-2 layout: the same tensors under their names."""
    new = {k: v for k, v in old.items() if k not in ("G", "D", "optG", "optD", "G_ema", "fixed_z")}
    new.update(format=FORMAT, upgraded_from=1, nets={"G": old["G"], "D": old["D"]}, recipe={},
               opts={g: old[k] for g, k in (("G", "optG"), ("D", "optD")) if k in old},
               ema={"G": old["G_ema"]} if "G_ema" in old else {},
               fixed={"z": old["fixed_z"]} if "fixed_z" in old else {})
    return new


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def prune(run_dir: Path, keep: int, protect: set[int] = frozenset()) -> None:
    """Keep the newest `keep` checkpoints (and any step in `protect`)."""
    found = list_checkpoints(run_dir)
    for step, p in found[:-keep] if keep > 0 else []:
        if step not in protect:
            p.unlink(missing_ok=True)


def resolve(path_or_run: str | Path) -> Path:
    """A checkpoint file, or a run dir -> its latest checkpoint."""
    p = Path(path_or_run)
    if p.is_dir():
        c = latest_checkpoint(p)
        if c is None:
            raise UserError(f"no checkpoints in run dir {p}")
        return c
    if not p.exists():
        raise UserError(f"no such run dir or checkpoint: {p}")
    return p
