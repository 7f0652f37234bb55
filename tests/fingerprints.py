"""Fingerprints of every preset's networks after 20 training steps: the guard that a refactor changes no numbers.

    python tests/fingerprints.py --write      # record (only when a preset's numbers are meant to change)

Each preset trains 20 G steps on CPU with one thread, seed 0, on small real data written from the embedded digits
(400 train + 200 test, 28x28 grey; a 32x32 RGB folder for the CIFAR-10 presets; 4,000 points for the toy sets).
Batches are capped at 32 and the SNGAN nets narrowed (NARROW) so the whole table trains in about a minute; every
other setting is the preset's.

Two records per preset, because float kernels differ between CPU kinds (AVX-512 / AVX2 / default):
  exact    sha256 of every tensor's bytes, stored under the CPU kind (cpu_kind()) and torch version that recorded it and
           compared only where both match;
  approx   per network, a random-projection sketch of the weights before and after training, compared everywhere:
           the distance between two runs' final weights as a share of the distance training moved them, within a
           per-preset tolerance set from kernel noise measured at record time (record()).
Adam-trained nets with BatchNorm amplify a one-ulp difference to ~0.3% of their travel in 20 steps, about what a
1% learning-rate change or one more step gives, so the approximate check catches structural changes there (a
dropped term, another loss, another order) and the exact hashes catch everything on the CPU kind that recorded
them. tests/test_fingerprints.py shows both: a one-ulp change and a swap of kernels pass the approximate check,
changed updates fail it, and the exact hashes tell a one-ulp change apart.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
FILE = HERE / "data" / "fingerprints.json"
STEPS = 20
TOL_FLOOR, NOISE_FACTOR = 0.02, 10.0  # the approximate check's tolerance: see record()
# Another CPU kind rounds differently again (other matmul kernels: AVX2 against AVX-512), which record() cannot
# measure on one machine: toy2d-ema's MLPs, recorded with zero kernel noise on an Intel AVX-512 Xeon, landed 0.022
# away on an AMD EPYC with AVX2 only (2026-12-02). The check's tolerance is at least this; it stays below the
# one-more-step distance of every preset whose approximate check sees one step (0.034 and up)
CROSS_KIND_FLOOR = 0.03


def approx_tol(want: dict) -> float:
    return max(want["tol"], CROSS_KIND_FLOOR)
SKETCH = 32
SKIP = {"figure1", "encoder"}  # encoder inverts a trained run: tests/test_inference.py trains one and checks it
# the two SNGAN presets at their published widths take minutes for 20 steps on one thread: narrower, same code
NARROW = {"sngan-cifar10": ["model.width_g=64", "model.width_d=16"],
          "sngan-resnet-cifar10": ["model.width_g=16", "model.width_d=16"]}  # trains on toy:gauss1d like toy2d-*; covered by test_one_step and its own test


def cpu_kind() -> str:
    """The kernels' identity: the vector ISA torch dispatches to, the CPU model with its bf16 / AMX units (oneDNN
    picks other fp32 convolution kernels on an AMX Xeon than on an AVX-512 EPYC: the same ISA name, other bits),
    and torch's version."""
    from counterfeit.runtime import cpu_flags, cpu_model

    units = "+".join(f for f in ("avx512_bf16", "amx_bf16") if f in cpu_flags())
    return f"{torch.backends.cpu.get_cpu_capability()}{'+' + units if units else ''}/{cpu_model()}/torch-{torch.__version__}"


def write_small_data(root: Path) -> dict[str, Path]:
    """The small real datasets the fingerprints train on (deterministic: the embedded digits' first images)."""
    from PIL import Image

    from counterfeit.data import load_data
    from counterfeit.data.idx import write_idx

    d = load_data("embedded", "train")
    x, y = d.x[:, 0].numpy(), d.y.numpy()
    gray = root / "gray"
    gray.mkdir(parents=True, exist_ok=True)
    write_idx(gray / "train-images-idx3-ubyte.gz", x[:400])
    write_idx(gray / "train-labels-idx1-ubyte.gz", y[:400])
    write_idx(gray / "t10k-images-idx3-ubyte.gz", x[400:600])
    write_idx(gray / "t10k-labels-idx1-ubyte.gz", y[400:600])
    rgb = root / "rgb"
    rgb.mkdir(exist_ok=True)
    for i, a in enumerate(x[:200]):
        tint = torch.tensor([(i % 3) / 2, 1.0, ((i + 1) % 3) / 2]).numpy()
        Image.fromarray((a[..., None] * tint).astype("uint8")).resize((32, 32)).save(rgb / f"{i:03d}.png")
    # image-to-image presets: digits padded to 32x32 -> their negatives, in the authors' two folder layouts
    import numpy as np

    pad = np.pad(x[:120], ((0, 0), (2, 2), (2, 2)))
    aligned, unpaired = root / "aligned", root / "unpaired"
    for split, part in (("train", pad[:40]), ("test", pad[100:108])):
        (aligned / split).mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(part):
            Image.fromarray(np.concatenate([a, 255 - a], 1)).save(aligned / split / f"{i:03d}.png")
    for sub, part in (("trainA", pad[:40]), ("trainB", 255 - pad[40:80]), ("testA", pad[100:108]),
                      ("testB", 255 - pad[108:116])):
        (unpaired / sub).mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(part):
            Image.fromarray(a).save(unpaired / sub / f"{i:03d}.png")
    return {"gray": gray, "rgb": rgb, "aligned": aligned, "unpaired": unpaired}


def preset_overrides(name: str, data: dict[str, Path]) -> list[str]:
    from counterfeit import config

    cfg = config.load_config(name)
    if cfg.data.name.startswith("toy:"):
        src = [f"data.name={cfg.data.name}", "data.limit=4000"]
    elif cfg.data.name == "cifar10" or name == "dcgan-folder":  # the folder preset on a folder of RGB images
        src = [f"data.name={data['rgb']}", "data.split=train"]
    elif cfg.model.recipe in ("pix2pix", "cyclegan"):  # narrower nets, the preset's code paths (jitter included)
        layout = "aligned" if cfg.model.recipe == "pix2pix" else "unpaired"
        src = [f"data.name={data[layout]}", "data.split=train", "data.image_size=0", "data.direction=AtoB",
               f"data.crop_size={28 if cfg.data.crop_size else 0}", "model.width_g=16", "model.width_d=16",
               "model.n_blocks=2", "model.unet_depth=0", "train.sample_grid=2"]
    else:
        src = [f"data.name={data['gray']}", "data.split=train"]
    # fp32: the records are of fp32 arithmetic (precision auto would pick bf16 on some CPU kinds and not others)
    return src + [f"train.steps={STEPS}", "train.epochs=0", "train.threads=1", "train.seed=0", "train.precision=fp32",
                  f"train.batch_size={min(cfg.train.batch_size, 32)}", "train.sample_every=20",
                  "train.checkpoint_every=20", "train.log_every=10", "train.parzen_monitor=false", "train.eval_every=0",
                  "train.max_minutes=0", *NARROW.get(name, [])]


def trained_tensors(state: dict) -> dict[str, torch.Tensor]:
    """Every network's parameters and buffers in a checkpoint, as 'NET.key' (EMA copies as 'NET_ema.key')."""
    nets = state.get("nets")
    if nets is None:  # format 1: flat G / D / G_ema
        nets = {k: state[k] for k in ("G", "D") if k in state}
        ema = {"G": state["G_ema"]} if "G_ema" in state else {}
    else:
        ema = state.get("ema", {})
    out = {f"{n}.{k}": v for n, sd in nets.items() for k, v in sd.items()}
    out.update({f"{n}_ema.{k}": v for n, sd in ema.items() for k, v in sd.items()})
    return out


def sketch(tensors: dict[str, torch.Tensor], dims: int = SKETCH) -> dict[str, list[float]]:
    """Per network, a fixed random projection of all its float parameters and buffers: (dims,) = sum_t P_t vec(t).

    P_t ~ N(0, 1), drawn from a generator seeded by the tensor's name, so distances between two states of a network
    are approximately kept (Johnson-Lindenstrauss): |sketch(a) - sketch(b)| ~ sqrt(dims) |a - b|."""
    out: dict[str, torch.Tensor] = {}
    for key in sorted(tensors):
        t = tensors[key]
        if not t.is_floating_point():
            continue
        net = key.split(".", 1)[0]
        seed = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
        g = torch.Generator().manual_seed(seed)
        v = t.detach().double().flatten()
        acc = out.setdefault(net, torch.zeros(dims, dtype=torch.float64))
        for i in range(0, v.numel(), 1 << 18):  # (dims, chunk) at a time
            chunk = v[i : i + (1 << 18)]
            acc += torch.randn(dims, chunk.numel(), generator=g, dtype=torch.float64) @ chunk
    return {k: v.tolist() for k, v in out.items()}


def fingerprint(tensors: dict[str, torch.Tensor], init: dict[str, torch.Tensor]) -> dict:
    exact = {k: hashlib.sha256(tensors[k].detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
             for k in sorted(tensors)}
    return {"exact": exact, "approx": {"final": sketch(tensors), "init": sketch(init)}}


def initial_tensors(cfg) -> dict[str, torch.Tensor]:
    """The networks as the loop builds them before the first step (same seed, same data statistics)."""
    from counterfeit.data import load_data
    from counterfeit.recipes import build_recipe

    d = cfg.data
    data = load_data(d.name, d.split, d.image_size, d.channels, d.limit)
    torch.manual_seed(cfg.train.seed)
    r = build_recipe(cfg, data.shape, data)
    out = {f"{n}.{k}": v.clone() for n, net in r.nets.items() for k, v in net.state_dict().items()}
    if cfg.train.ema_decay > 0:
        out.update({f"{n}_ema.{k}": v.clone() for n in r.ema_nets for k, v in r.nets[n].state_dict().items()})
    return out


def run_preset(name: str, data: dict[str, Path], work: Path, extra: list[str] = ()) -> dict:
    from counterfeit import config
    from counterfeit.checkpoint import safe_load
    from counterfeit.loop import train

    cfg = config.load_config(name, preset_overrides(name, data) + list(extra))
    threads = torch.get_num_threads()
    try:
        init = initial_tensors(cfg)
        res = train(cfg, work / name, progress=False)
    finally:
        torch.set_num_threads(threads)
    return fingerprint(trained_tensors(safe_load(res.checkpoint)), init)


def distances(want: dict, got: dict) -> dict[str, float]:
    """Per network: |got - want| / |want - init| from the sketches: how far apart two runs end, as a share of how far
    training moved the weights (a network that is missing on one side counts as infinitely far)."""
    out = {}
    for net in sorted(set(want["final"]) | set(got["final"])):
        if net not in want["final"] or net not in got["final"]:
            out[net] = float("inf")
            continue
        a, b, a0 = (torch.tensor(x, dtype=torch.float64) for x in (want["final"][net], got["final"][net],
                                                                    want["init"][net]))
        out[net] = float((b - a).norm() / (a - a0).norm().clamp(min=1e-30))
    return out


def mismatches(want: dict, got: dict, tol: float) -> list[str]:
    return [f"{net} ({d:.2g} > {tol:.2g})" for net, d in distances(want, got).items() if not d <= tol]


def record(name: str, data: dict[str, Path], work: Path) -> tuple[dict, dict]:
    """The preset's fingerprint, with the tolerance its approximate check gets on another CPU kind.

    Kernel noise is measured with two real kernel swaps on this machine: oneDNN off (other convolution kernels) and
    two threads (other reduction orders). The tolerance is NOISE_FACTOR x the larger, at least TOL_FLOOR. Beside it
    the distance of a run one step longer, so the record says whether the approximate check can see a change that
    small for this preset (`sees_one_more_step`); where it cannot, only the exact hashes guard it."""
    base = run_preset(name, data, work / "base")
    torch.backends.mkldnn.enabled = False
    try:
        no_onednn = run_preset(name, data, work / "no-onednn")
    finally:
        torch.backends.mkldnn.enabled = True
    two = run_preset(name, data, work / "two-threads", ["train.threads=2"])
    longer = run_preset(name, data, work / "longer", [f"train.steps={STEPS + 1}"])
    noise = max(max(distances(base["approx"], o["approx"]).values()) for o in (no_onednn, two))
    step = min(distances(base["approx"], longer["approx"]).values())
    tol = max(TOL_FLOOR, NOISE_FACTOR * noise)
    approx = {**base["approx"], "tol": tol, "kernel_noise": noise, "one_more_step": step,
              "sees_one_more_step": step > tol}
    return approx, base["exact"]


def presets() -> list[str]:
    from counterfeit.config import preset_names

    return [p for p in preset_names() if p not in SKIP]


def main(argv=None) -> int:
    import argparse
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help="record the fingerprints of this code on this CPU kind")
    p.add_argument("--exact-only", action="store_true",
                   help="with --write: record only this CPU kind's exact hashes (the approximate records stay)")
    p.add_argument("--only", help="comma-separated presets")
    args = p.parse_args(argv)
    doc = json.loads(FILE.read_text()) if FILE.is_file() else {"approx": {}, "exact": {}}
    names = args.only.split(",") if args.only else presets()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_small_data(Path(tmp) / "data")
        for name in names:
            if args.write and args.exact_only:
                doc["exact"].setdefault(cpu_kind(), {})[name] = run_preset(name, data, Path(tmp) / "runs")["exact"]
                print(f"recorded {name}: exact hashes on {cpu_kind()}", flush=True)
            elif args.write:
                approx, exact = record(name, data, Path(tmp) / "runs" / name)
                doc["approx"][name] = approx
                doc["exact"].setdefault(cpu_kind(), {})[name] = exact
                print(f"recorded {name}: tol {approx['tol']:.3g}, kernel noise {approx['kernel_noise']:.3g}, "
                      f"one more step {approx['one_more_step']:.3g}", flush=True)
            else:
                fp = run_preset(name, data, Path(tmp) / "runs")
                want = doc["approx"][name]
                bad = mismatches(want, fp["approx"], want["tol"])
                same = doc["exact"].get(cpu_kind(), {}).get(name) == fp["exact"]
                print(f"{name}: exact {'same' if same else 'differs'}, approx {'ok' if not bad else 'DIFFERS ' + ', '.join(bad)}")
    if args.write:
        FILE.parent.mkdir(parents=True, exist_ok=True)
        doc["about"] = __doc__.split("\n\n")[1].strip()
        FILE.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
