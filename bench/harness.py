"""What every suite shares: the machine a figure was measured on, the command that measured it, a record that
two processes can add rows to, and a child process that can import the suites."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def machine() -> dict:
    """The CPU (model, cores, the flags that decide the kernels), torch and Python: beside every figure."""
    from counterfeit.runtime import cpu_flags, cpu_model, native_bf16

    flags = cpu_flags()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": sorted(f for f in flags if f.startswith(("avx512", "amx", "avx2", "fma"))),
            "native_bf16": native_bf16(torch.device("cpu"))[1]}


def command() -> str:
    """This process's command line, as a user would type it again (`python -m bench.NAME ...`)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name == "bench.__main__":  # `python -m bench SUITE` set argv[0] to bench.SUITE
        head = f"python -m {sys.argv[0]}"
    else:
        head = f"python -m {spec.name}" if spec is not None and spec.name else f"python {sys.argv[0]}"
    return " ".join([head, *map(shlex.quote, sys.argv[1:])])


def with_root(env) -> str:
    """A PYTHONPATH with the repository root first, for a child process that imports the suites."""
    return os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH", "")])])


def record_row(out: Path, name: str, entry: dict, **header) -> None:
    """Merge one row into the JSON record at `out` (and set its header keys), read again under a lock and written
    atomically: two of a suite's processes may run at once, one per core, each adding its own rows."""
    from counterfeit.checkpoint import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(out.read_text()) if out.is_file() else {}
        results.update(header)
        results.setdefault("rows", {})[name] = entry
        atomic_write(out, (json.dumps(results, indent=1) + "\n").encode())
