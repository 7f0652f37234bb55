"""Take a trained generator elsewhere: safetensors, TorchScript or ONNX, beside a JSON of how to call it.

    counterfeit export RUN --format safetensors|torchscript|onnx --out DIR      (or Run.export(DIR, format))

DIR gets one file per generator (G; CycleGAN's G_AB and G_BA) and generator.json: what goes in (z's size and
distribution, the classes of a conditional run, or the image shape and range of a translator), what comes out
(shape, range, how to make uint8 pixels of it), the preset, step, whether the weights are the moving average, and
each file's sha256. The TorchScript and ONNX files run in a process that never imports counterfeit; a safetensors
folder is read back by `counterfeit.load(DIR)`. The folder is written whole or not at all (a temp folder renamed).
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ckpt
from .errors import UserError
from .metrics.features import sha256_file as sha256

FORMATS = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}
SPEC = "generator.json"


class NoiseToImage(nn.Module):
    """G's call with a fixed signature: z (B, z_dim) float32 [, y (B,) int64] -> images (B, C, H, W) float32."""

    def __init__(self, G: nn.Module, conditional: bool):
        super().__init__()
        self.G, self.conditional = G, conditional

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return (self.G(z, y) if self.conditional else self.G(z)).float()


class ImageToImage(nn.Module):
    """A translator's call: x (B, C, H, W) float32 in [-1, 1] -> (B, C', H, W) float32 in [-1, 1]."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.G(x).float()


def generators(recipe) -> dict[str, nn.Module]:
    """The networks a run's users call: G, or a translator per direction (CycleGAN: G_AB, G_BA)."""
    if hasattr(recipe, "sample_z"):
        if "G" not in recipe.nets:  # an encoder run: its G belongs to the run it inverts
            from .errors import UserError

            raise UserError(f"an '{recipe.cfg.model.recipe}' run holds E, not G: export the run it inverts "
                            f"({recipe.cfg.model.from_run})")
        return {"G": NoiseToImage(recipe.nets["G"], getattr(recipe, "conditional", False)).eval()}
    names = ["G"] if "G" in recipe.nets else ["G_AB", "G_BA"]
    return {n: ImageToImage(recipe.nets[n]).eval() for n in names}


def example_inputs(recipe, name: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Fixed inputs of the right kind for one exported network (drawn from their own seed)."""
    g = torch.Generator().manual_seed(1234)
    if hasattr(recipe, "sample_z"):
        z = recipe.sample_z(batch, generator=g)
        return (z, torch.arange(batch) % recipe.num_classes) if getattr(recipe, "conditional", False) else (z,)
    c, h, w = recipe.shape_a if name in ("G", "G_AB") else recipe.shape_b
    return (torch.rand(batch, c, h, w, generator=g) * 2 - 1,)


def describe(recipe, cfg, info: dict, name: str) -> dict:
    """What a caller needs to know to call one exported network."""
    rng = cfg.data.range
    if hasattr(recipe, "sample_z"):
        dist = {"uniform": f"uniform on [-{math.sqrt(3):.6f}, {math.sqrt(3):.6f}] (unit variance)",
                "uniform1": "uniform on [-1, 1]", "uniform01": "uniform on [0, 1)"}.get(cfg.model.noise,
                                                                                   "standard normal")
        inputs = {"z": {"shape": ["B", cfg.model.z_dim], "dtype": "float32", "distribution": dist}}
        if getattr(recipe, "conditional", False):
            inputs["y"] = {"shape": ["B"], "dtype": "int64", "classes": recipe.num_classes}
        c, h, w = recipe.shape
        out = {"shape": ["B", c, h, w], "dtype": "float32", "range": [0, 1] if rng == "01" else [-1, 1],
               "to_uint8": "round(clamp(x, 0, 1) * 255)" if rng == "01" else "round((clamp(x, -1, 1) + 1) * 127.5)"}
    else:
        src, dst = (recipe.shape_a, recipe.shape_b) if name in ("G", "G_AB") else (recipe.shape_b, recipe.shape_a)
        inputs = {"x": {"shape": ["B", src[0], "H", "W"], "dtype": "float32", "range": [-1, 1],
                        "from_uint8": "x / 127.5 - 1", "trained_on": list(src[1:])}}
        out = {"shape": ["B", dst[0], "H", "W"], "dtype": "float32", "range": [-1, 1],
               "to_uint8": "round((clamp(x, -1, 1) + 1) * 127.5)"}
    return {"args": list(inputs), "inputs": inputs, "output": out}  # args: the call's order (the JSON sorts keys)


def export(run, out, fmt: str = "safetensors") -> Path:
    """Write run's generator(s) to the folder `out` in `fmt`; returns the folder. `run`: a counterfeit.Run."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder; refusing to overwrite it")
    recipe, cfg, info = run.recipe, run.config, run._load()[2]
    nets = generators(recipe)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    tmp.chmod(0o777 & ~ckpt.umask())  # mkdtemp makes 0700; the folder is the user's like any other
    try:
        with ckpt.writing(out):
            spec = {"format": fmt, "preset": cfg.name, "recipe": cfg.model.recipe, "step": info["step"],
                    "ema": info["ema"], "networks": {}, "config": cfg.to_dict(),
                    "shape": [list(s) for s in recipe.shape] if isinstance(recipe.shape[0], (tuple, list))
                    else list(recipe.shape)}
            for name, net in nets.items():
                path = tmp / f"{name}{FORMATS[fmt]}"
                WRITERS[fmt](net, example_inputs(recipe, name), path, name)
                spec["networks"][name] = {"file": path.name, "sha256": sha256(path), **describe(recipe, cfg, info, name)}
            ckpt.write_json(tmp / SPEC, spec)
            if out.exists():
                out.rmdir()  # empty (checked above)
            tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_safetensors(net: nn.Module, example, path: Path, name: str) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in net.G.state_dict().items()}, str(path))


@torch.no_grad()
def write_torchscript(net: nn.Module, example, path: Path, name: str) -> None:
    import warnings

    frozen = copy.deepcopy(net).cpu().requires_grad_(False)  # a caller's outputs carry no autograd graph
    with warnings.catch_warnings():  # torch marks jit.trace deprecated; TorchScript files still load everywhere
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(frozen, example, check_trace=False).save(str(path))


@torch.no_grad()
def write_onnx(net: nn.Module, example, path: Path, name: str) -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs the onnx packages: pip install -e \".[export]\"") from None
    names = ["z", "y"][:len(example)] if isinstance(net, NoiseToImage) else ["x"]
    axes = {n: {0: "B"} for n in names} | {"out": {0: "B"}}
    if isinstance(net, ImageToImage):
        axes["x"] |= {2: "H", 3: "W"}
        axes["out"] |= {2: "H", 3: "W"}
    import warnings

    with warnings.catch_warnings():  # the TorchScript-based exporter: the one that takes these nets as they are
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(copy.deepcopy(net).cpu().requires_grad_(False), example, str(path), input_names=names,
                          output_names=["out"], dynamic_axes=axes, dynamo=False, opset_version=17)


WRITERS = {"safetensors": write_safetensors, "torchscript": write_torchscript, "onnx": write_onnx}


def load_export(folder: Path):
    """A safetensors export folder -> (recipe, config, info), as sampling.load_generator gives for a run."""
    from . import config as config_mod
    from .recipes import build_recipe

    spec = json.loads((folder / SPEC).read_text())
    if spec.get("format") != "safetensors":
        raise UserError(f"{folder} holds a {spec.get('format')} export: load it with "
                        f"{'torch.jit.load' if spec.get('format') == 'torchscript' else 'onnxruntime'}, or "
                        "export the run as safetensors to open it with counterfeit.load")
    from safetensors.torch import load_file

    cfg = config_mod.from_dict(spec["config"])
    shape = tuple(tuple(s) for s in spec["shape"]) if isinstance(spec["shape"][0], list) else tuple(spec["shape"])
    recipe = build_recipe(cfg, shape, None)
    for name, net in spec["networks"].items():
        path = folder / net["file"]
        if sha256(path) != net["sha256"]:
            raise UserError(f"{path}: sha256 differs from generator.json's (a changed or damaged file)")
        recipe.nets[name].load_state_dict(load_file(str(path)))
    for m in recipe.nets.values():
        m.eval()
    recipe.step = spec["step"]
    return recipe, cfg, {"path": str(folder), "step": spec["step"], "ema": spec["ema"]}
