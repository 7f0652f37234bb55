"""Benchmark: training throughput in one process against several under torchrun (DDP), and the all-reduce's share.

    python -m bench.scaling [--steps 40] [--presets gan2014-mnist,dcgan-tf-mnist] [--nproc 2]

For each preset, on real MNIST: images per second (global batch x minibatches per step / seconds per step, taken
from the run's metrics.jsonl `time` column after the first row, so start-up and the first steps are left out) for
  1 process x all cores as threads          `counterfeit train PRESET`
  N processes x cores/N threads (gloo)       `counterfeit train PRESET --nproc N`
and the communication share of a step: an all-reduce of as many fp32 values as the preset's networks have
parameters, per optimizer update, timed alone between N gloo processes on this machine, against the N-process step
time. On a 2-core CPU no gain is expected: the figures show the overhead honestly. Where a GPU machine is lent,
the same rows run with --device cuda per GPU count (nccl). Results: bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
from bench.harness import machine  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), GLOO_SOCKET_IFNAME="lo", COUNTERFEIT_NO_TENSORBOARD="1")
    env.setdefault("COUNTERFEIT_DATA", str(ROOT.parent / "shared" / "datasets"))
    env.pop("WORLD_SIZE", None)
    return env


def run_rate(preset: str, nproc: int, steps: int, device: str) -> dict:
    """Seconds per step and images per second of `counterfeit train PRESET` in nproc processes."""
    cores = os.cpu_count() or 1
    threads = max(1, cores // nproc) if device == "cpu" else 1
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "counterfeit", "train", preset, "--out", str(out), "--steps", str(steps),
               "--no-progress", "--device", device, "--set", "train.log_every=5", "--set", "train.sample_every=100000",
               "--set", f"train.checkpoint_every={steps}", "--set", "train.parzen_monitor=false",
               "--set", "train.precision=fp32"]
        if nproc > 1:
            cmd += ["--nproc", str(nproc)]
        t = time.time()
        r = subprocess.run(cmd, env=_env(threads), capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        cfg = json.loads((out / "config.json").read_text())
    timed = [x for x in rows if "img/s" in x]
    first, last = timed[0], timed[-1]
    s_per_step = (last["time"] - first["time"]) / (last["step"] - first["step"])
    imgs = cfg["train"]["batch_size"] * cfg["train"]["n_dis"]  # minibatches per step: k D steps (one if joint)
    return {"processes": nproc, "threads_each": threads, "s_per_step": round(s_per_step, 4),
            "img_per_s": round(imgs / s_per_step, 1), "wall_s": round(time.time() - t, 1), "steps": steps}


def param_counts(preset: str) -> dict:
    from counterfeit import config
    from counterfeit.data import load_data
    from counterfeit.recipes import build_recipe

    cfg = config.load_config(preset, ["data.limit=256"])
    data = load_data(cfg.data.name, cfg.data.split, cfg.data.image_size, cfg.data.channels, cfg.data.limit)
    recipe = build_recipe(cfg, data.shape, data)
    return {n: sum(p.numel() for p in m.parameters()) for n, m in recipe.nets.items()}


def allreduce_ms(numel: int, nproc: int, device: str, reps: int = 20) -> float:
    """Median milliseconds of one all-reduce of numel fp32 values between nproc processes (torchrun, gloo/nccl)."""
    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "ms.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", f"--nproc-per-node={nproc}",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_port()}", str(Path(__file__).resolve()),
               "--allreduce-worker", str(numel), str(reps), device, str(res)]
        r = subprocess.run(cmd, env=_env(max(1, (os.cpu_count() or 1) // nproc)), capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"all-reduce worker failed:\n{r.stderr[-3000:]}")
        return json.loads(res.read_text())["median_ms"]


def _allreduce_worker(numel: int, reps: int, device: str, res: str) -> int:
    import torch.distributed as tdist

    cuda = device == "cuda"
    if cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    tdist.init_process_group("nccl" if cuda else "gloo")
    t = torch.randn(numel, device="cuda" if cuda else "cpu")
    times = []
    for i in range(reps + 3):
        tdist.barrier()
        t0 = time.perf_counter()
        tdist.all_reduce(t)
        if cuda:
            torch.cuda.synchronize()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    if tdist.get_rank() == 0:
        Path(res).write_text(json.dumps({"median_ms": sorted(times)[len(times) // 2]}))
    tdist.destroy_process_group()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--allreduce-worker":
        return _allreduce_worker(int(argv[1]), int(argv[2]), argv[3], argv[4])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--presets", default="gan2014-mnist,dcgan-tf-mnist")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--result", default=str(HERE / "results" / "scaling.json"))
    args = p.parse_args(argv)
    doc = {"about": __doc__.split("\n\n", 2)[2].strip(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "command": "python -m bench.scaling " + " ".join(argv), "device": args.device,
           "gpu": (torch.cuda.get_device_name(0) if torch.cuda.is_available() else
                   "none: no CUDA device on this machine, and the device tool lent none to this session"),
           "presets": {}}
    for preset in args.presets.split(","):
        counts = param_counts(preset)
        one = run_rate(preset, 1, args.steps, args.device)
        many = run_rate(preset, args.nproc, args.steps, args.device)
        # one all-reduce per network per update: D's and G's gradients (DDP buckets them; the bytes are the same)
        comm = sum(allreduce_ms(n, args.nproc, args.device) for n in counts.values())
        row = {"parameters": counts, "one_process": one, f"{args.nproc}_processes": many,
               "speedup": round(many["img_per_s"] / one["img_per_s"], 3),
               "allreduce_ms_per_step": round(comm, 2),
               "communication_share_of_step": round(comm / 1000 / many["s_per_step"], 3)}
        doc["presets"][preset] = row
        print(preset, json.dumps(row), flush=True)
    Path(args.result).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
