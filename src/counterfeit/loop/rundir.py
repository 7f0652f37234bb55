"""The run dir a training owns: refused when taken, locked while in use, brought back to the checkpoint on resume."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from .. import checkpoint as ckpt
from .. import config as config_mod
from ..errors import UserError

# keys that say how long / where to run, not what to train (declared on their fields): they may change on --resume
RESUMABLE_KEYS = config_mod.resumable_keys()


def guard_run_dir(run: Path, resume: bool) -> None:
    """Refuse an --out that holds something else (or, with --resume, no run), before anything is read or written."""
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
        # the folders above it that the lock makes (runs/ on a first run): removed with it when nothing was written
        self.parents = [p for p in run.absolute().parents if not p.exists()]

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
                for p in self.parents:  # nearest first
                    try:
                        p.rmdir()
                    except OSError:  # another run wrote there meanwhile
                        break
            self.f.close()  # releases the flock
        return False


def claim(run: Path, resume: bool, stack) -> None:
    """Guard the run dir, then hold its lock for as long as `stack` is open (rank 0 does this for every rank)."""
    guard_run_dir(run, resume)
    stack.enter_context(RunLock(run))


def truncate_metrics(path: Path, step: int) -> None:
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


def read_resume(cfg, run: Path, resume: bool, allow_config_change: bool, world: int) -> dict | None:
    """Rank 0: the checkpoint to resume from (None: the run starts at step 0), checked against this config and
    process count. It reads only: a refusal leaves the run dir as it was."""
    path = ckpt.latest_checkpoint(run) if resume else None
    if path is None:
        return None
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
    state["_path"] = str(path)
    return state


def prepare_run_dir(cfg, run: Path, resume: bool, step: int, progress: bool) -> None:
    """Rank 0, once every check has passed: clean up after killed writes, bring the logs back to the step the run
    resumes at (or clear them: a run resumed before its first checkpoint starts again at 0), write the config."""
    removed = ckpt.clean_orphans(run)  # temp files of writes a killed process left (the run dir is locked: ours)
    if removed and progress:
        print(f"removed {len(removed)} unfinished checkpoint file(s) of an interrupted write", file=sys.stderr)
    if resume and step == 0:  # guard_run_dir saw its config.json, and there is no checkpoint
        if progress:
            print(f"{run} has no checkpoint yet: starting it from step 0", file=sys.stderr)
        for p in [run / "metrics.jsonl", *(run / "samples").glob("step-*.png")]:
            p.unlink(missing_ok=True)
        shutil.rmtree(run / "tb", ignore_errors=True)
    elif resume:
        truncate_metrics(run / "metrics.jsonl", step)
        for p in (run / "samples").glob("step-*.png"):
            if int(p.stem.split("-")[1]) > step:
                p.unlink()
    with ckpt.writing(run / "config.json"):
        run.mkdir(parents=True, exist_ok=True)
        (run / "samples").mkdir(exist_ok=True)
        ckpt.write_json(run / "config.json", cfg.to_dict())  # resolved options, before training starts
