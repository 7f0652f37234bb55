"""What the machine can do, and how a run uses it: native bf16 (for precision=auto) and the CPU thread count.

bf16 autocast pays only where the hardware computes in bf16: AVX-512 BF16 or AMX on a CPU, bf16 tensor cores on a
GPU. Elsewhere oneDNN emulates it and a step runs many times slower than fp32 (bench/results/speed-avx2.json), so
`train.precision: auto` resolves to bf16 only where the capability query says it is native.

Threads: OpenMP threads spin-wait between parallel regions, so two trainings that each take every core slow each
other down badly. With `train.threads: 0` (auto) each counterfeit training registers itself in a small
folder of live runs and takes the cores it may use (its affinity mask) divided by the number of live runs, at
least one; it looks again every few seconds, so a run started alone gives up a core when a second one starts and
takes it back when that one ends. OMP_NUM_THREADS set in the environment (torchrun sets 1) wins over auto.

Memory: glibc's malloc hands large freed blocks back to the kernel (munmap, heap trimming), so every step's
activations, gradients and dropout masks of a convolutional GAN came back as fresh pages that the kernel faulted in
and zeroed at every step (bench/speed.py --only malloc; bench/results/speed-avx512bf16.json).
`keep_freed_memory()` asks glibc to keep freed memory for reuse (mallopt, the in-process form of the MALLOC_*_
variables; what tcmalloc and jemalloc do by design). COUNTERFEIT_MALLOC=system leaves the allocator as it is.
"""

from __future__ import annotations

import ctypes
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from .errors import UserError

PEER_STALE_S = 60.0  # a registration not refreshed for this long belongs to a run that died without cleaning up
PEER_REFRESH_S = 5.0  # how often a live run refreshes its registration and recounts its peers
_TORCH_DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice at import: the physical cores


# ---------------------------------------------------------------------- bf16


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` computes in bf16 natively, and the evidence, in words."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported(including_emulation=False)
        return ok, f"{torch.cuda.get_device_name(device)} {'has' if ok else 'has no'} native bf16"
    query = getattr(torch, "cpu", None)
    try:  # torch's own capability query (the CPU's AVX-512 BF16 and AMX tile bits)
        avx512_bf16, amx = query._is_avx512_bf16_supported(), query._is_amx_tile_supported()
    except AttributeError:  # an older torch: the kernel's view of the same bits
        flags = cpu_flags()
        avx512_bf16, amx = "avx512_bf16" in flags, "amx_bf16" in flags
    have = [name for name, ok in (("AVX-512 BF16", avx512_bf16), ("AMX", amx)) if ok]
    if not have:
        return False, "this CPU has neither AVX-512 BF16 nor AMX (bf16 would be emulated, slower than fp32)"
    capped = isa_cap()
    if capped:  # the hardware has it, but torch and oneDNN were told not to use it
        return False, f"this CPU has {' and '.join(have)}, but {capped} holds torch below it (bf16 would be emulated)"
    return True, "this CPU has " + " and ".join(have)


def isa_cap() -> str | None:
    """An environment setting that keeps torch's or oneDNN's kernels below AVX-512 (so below native bf16), named."""
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if aten and aten not in ("avx512", "avx512_bf16", "amx", "default"):
        return f"ATEN_CPU_CAPABILITY={aten}"
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    if isa and isa != "ALL" and not isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10")):
        return f"ONEDNN_MAX_CPU_ISA={isa}"
    return None


def resolve_precision(requested: str, device: torch.device, suited: tuple[bool, str] = (True, "")) -> tuple[str, str]:
    """(fp32 | bf16 | fp16, why): `auto` is bf16 where the device has it natively and the recipe is suited to it (`suited`:
    the recipe's bf16_auto()), else fp32; the others are taken as asked, with a warning-worthy reason when bf16 is
    asked for on hardware that only emulates it."""
    ok, why = native_bf16(device)
    if requested == "auto":
        if ok and not suited[0]:
            return "fp32", f"auto: {suited[1]}"
        return ("bf16" if ok else "fp32"), f"auto: {why}"
    if requested == "bf16" and not ok:
        return "bf16", f"as set, though {why}"
    if requested == "fp16" and device.type != "cuda":
        raise UserError("train.precision=fp16 is for CUDA (float16 autocast with a gradient scaler); on a CPU use "
                        "auto, bf16 or fp32")
    return requested, "as set"


# ---------------------------------------------------------------------- threads


def usable_cores() -> int:
    """The cores this process may run on: its affinity mask, capped at torch's default (physical cores, so two
    hyperthreads of one core count once)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(n, _TORCH_DEFAULT_THREADS))


def peers_dir() -> Path:
    return Path(os.environ.get("COUNTERFEIT_RUNTIME_DIR") or Path(tempfile.gettempdir()) / f"counterfeit-{os.getuid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ThreadPolicy:
    """Registers this process as a live training and keeps torch's intra-op thread count at its share of the
    cores. `requested` > 0 is a fixed count (no registration); 0 is auto, as the module's docstring says."""

    def __init__(self, requested: int = 0, name: str = ""):
        self.requested = requested
        self.env = os.environ.get("OMP_NUM_THREADS", "").strip()
        self.auto = requested == 0 and not self.env
        self.path: Path | None = None
        self.threads = self.before = torch.get_num_threads()
        self.peers = 1
        self.checked = 0.0
        self.name = name

    def __enter__(self) -> "ThreadPolicy":
        if self.requested > 0:
            self._set(self.requested)
        elif self.auto:
            d = peers_dir()
            d.mkdir(parents=True, exist_ok=True)
            self.path = d / f"{os.getpid()}.json"
            self.path.write_text(json.dumps({"pid": os.getpid(), "run": self.name, "started": time.time()}))
            self.refresh(force=True)
        return self

    def __exit__(self, *exc) -> bool:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
        torch.set_num_threads(self.before)  # a caller that trains twice in one process starts from the same place
        return False

    def live_peers(self) -> int:
        """Live counterfeit trainings on this machine, this one included; stale registrations are removed."""
        n, now = 0, time.time()
        for p in peers_dir().glob("*.json"):
            try:
                pid = int(p.stem)
                fresh = now - p.stat().st_mtime < PEER_STALE_S
            except (ValueError, OSError):
                continue
            if pid == os.getpid() or (fresh and _alive(pid)):
                n += 1
            else:
                p.unlink(missing_ok=True)
        return max(n, 1)

    def refresh(self, force: bool = False) -> bool:
        """Recount the live runs (at most every PEER_REFRESH_S) and resize the thread pool; True if it changed."""
        if not self.auto or (not force and time.time() - self.checked < PEER_REFRESH_S):
            return False
        self.checked = time.time()
        if self.path is not None:
            os.utime(self.path)  # still alive
        self.peers = self.live_peers()
        return self._set(max(1, usable_cores() // self.peers))

    def _set(self, n: int) -> bool:
        self.threads, changed = n, n != torch.get_num_threads()
        if changed:
            torch.set_num_threads(n)
        return changed

    def describe(self) -> str:
        if self.requested > 0:
            return f"{self.threads} threads (as set)"
        if not self.auto:
            return f"{torch.get_num_threads()} threads (OMP_NUM_THREADS={self.env})"
        return (f"{self.threads} threads (auto: {usable_cores()} cores, {self.peers} live "
                f"training{'s' if self.peers > 1 else ''})")


# ---------------------------------------------------------------------- memory


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
# blocks above this still come from mmap; an Inception batch's activations (hundreds of MB) stay below it. Older
# glibc refuses thresholds over 32 MiB: then 32 MiB
MMAP_ABOVE, MMAP_ABOVE_OLD = 1 << 30, 32 << 20
KEEP_FREED = 1 << 30  # free memory at the top of the heap kept, not trimmed, up to 1 GiB
_ALLOCATOR: str | None = None  # what keep_freed_memory() did, once per process


def keep_freed_memory() -> str:
    """Make glibc's malloc keep freed memory for reuse: a fixed mmap threshold of 1 GiB (the dynamic one starts at
    128 KiB) and a trim threshold of 1 GiB, set once per process. Returns what the allocator does, in words, for
    the run's log. Left alone where COUNTERFEIT_MALLOC=system, where the environment sets glibc's thresholds
    (MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_, GLIBC_TUNABLES), where another allocator is preloaded, and where
    the C library is not glibc."""
    global _ALLOCATOR
    if _ALLOCATOR is not None:
        return _ALLOCATOR
    preload = os.environ.get("LD_PRELOAD", "")
    if os.environ.get("COUNTERFEIT_MALLOC", "").strip().lower() in ("system", "off", "0"):
        _ALLOCATOR = "system malloc (COUNTERFEIT_MALLOC=system)"
    elif os.environ.get("MALLOC_TRIM_THRESHOLD_") or os.environ.get("MALLOC_MMAP_THRESHOLD_") or \
            any(t in os.environ.get("GLIBC_TUNABLES", "") for t in ("trim_threshold", "mmap_threshold")):
        _ALLOCATOR = "glibc malloc as the environment sets it"
    elif any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        _ALLOCATOR = f"preloaded allocator ({preload})"
    else:
        try:
            libc = ctypes.CDLL(None)
            libc.gnu_get_libc_version.restype = ctypes.c_char_p
            version = libc.gnu_get_libc_version().decode()
            ok = (libc.mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE) == 1 or libc.mallopt(M_MMAP_THRESHOLD, MMAP_ABOVE_OLD) == 1) \
                and libc.mallopt(M_TRIM_THRESHOLD, KEEP_FREED) == 1
        except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
            _ALLOCATOR = "system malloc (not glibc)"
        else:
            _ALLOCATOR = (f"glibc {version} malloc keeps freed memory" if ok
                          else f"glibc {version} malloc (mallopt refused)")
    return _ALLOCATOR
