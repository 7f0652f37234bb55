"""Typed configuration: dataclasses, YAML presets, `--set a.b=value` overrides, dump and diff.

A config is a tree of dataclasses. Presets are YAML files holding a partial tree; anything not named
keeps the dataclass default, so `counterfeit train PRESET --dry-run` shows every resolved value.
Unknown keys and wrong types are UserErrors (one line, exit 2), never silently ignored.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


@dataclass
class DataConfig:
    name: str = "mnist"  # mnist | fashion-mnist | cifar10 | embedded | toy name | PATH
    split: str = "paper-train"  # train | test | paper-train (train[0:50000]) | paper-valid | all
    range: str = "01"  # pixel range fed to the nets: "01" ([0, 1], sigmoid G) or "pm1" ([-1, 1], tanh G)
    image_size: int = 0  # image folders only: resize + centre crop to this size (0 = keep)
    channels: int = 0  # image folders only: 1 or 3 (0 = infer)
    limit: int = 0  # keep only the first N examples (0 = all)
    crop_size: int = 0  # translation: random crop to this size per batch, centre crop at test (0 = none)
    flip: bool = False  # translation: random horizontal flip per batch (a pair shares it)
    direction: str = "AtoB"  # translation: AtoB, or BtoA to learn the other way (the authors' --direction)


@dataclass
class ModelConfig:
    recipe: str = "gan"  # a name in counterfeit.recipes
    generator: str = "mlp"  # a name in counterfeit.nets
    discriminator: str = "maxout"
    z_dim: int = 100
    noise: str = "uniform"  # uniform: U[-sqrt(3), sqrt(3)] (unit variance, as the 2014 code) | normal
    g_hidden: list = field(default_factory=lambda: [1200, 1200])
    g_init_range: float = 0.05  # weights ~ U[-r, r]
    g_output_bias_from_data: bool = True  # sigmoid bias = logit of the data's pixel marginals
    d_units: int = 240
    d_pieces: int = 5
    d_layers: int = 2
    d_init_range: float = 0.005
    d_input_keep: float = 0.8  # dropout keep-probability on D's input pixels
    d_hidden_keep: float = 0.5  # dropout keep-probability on D's hidden units
    width_g: int = 0  # base channel width of convolutional G (0 = the architecture's default)
    width_d: int = 0
    depth_g: int = 0  # Radford G/D: extra 3x3 stride-1 conv blocks at every resolution (0 = the paper's nets)
    depth_d: int = 0
    d_batchnorm: bool = True  # Radford D: BatchNorm after every conv but the first
    g_batchnorm: bool = False  # toy MLP generator: BatchNorm after every hidden layer (PacGAN's 2D G)
    g_out_scale: float = 1.0  # toy MLP generator: output multiplied by this; 0 = the data's std (auto)
    spectral_norm: bool = False  # spectral normalisation on every D layer (SNGAN)
    num_classes: int = 0  # > 0 makes G and D conditional on a label
    embed_dim: int = 50  # label embedding size in G (concat)
    g_cond: str = "concat"  # how G sees the label: concat ([z, embed(y)] at the input) | cbn (class-conditional BN)
    d_cond: str = "none"  # how D sees the label: none | concat | projection | acgan
    d_hidden: list = field(default_factory=lambda: [128, 128])  # toy MLP discriminator
    activation: str = "relu"  # toy MLPs: relu | tanh | leaky_relu
    pack: int = 1  # PacGAN: D judges `pack` samples at once, concatenated along features / channels
    norm: str = "batch"  # translation nets: batch | instance normalisation
    unet_depth: int = 0  # U-Net levels (0 = as many as the image size allows: 8 at 256x256, 5 at 32x32)
    g_dropout: bool = True  # dropout 0.5 in U-Net decoder blocks / ResNet blocks (Pix2Pix's only noise source)
    n_blocks: int = 9  # residual blocks of CycleGAN's ResNet generator (6 at 128x128, 9 at 256x256)
    patch_layers: int = 3  # PatchGAN: stride-2 layers; receptive field 16, 34, 70 for 1, 2, 3


@dataclass
class LossConfig:
    g_loss: str = "nonsat"  # nonsat: -log D(G(z)) | minimax: log(1 - D(G(z))) (the saturating one)
    d_scale: float = 0.5  # D's objective is d_scale * (BCE(real) + BCE(fake)); 0.5 in the 2014 code
    real_label: float = 1.0  # < 1 is one-sided label smoothing (Salimans et al.: 0.9); BCE recipes only
    gp_weight: float = 0.0  # gradient penalty on real/fake interpolates (WGAN-GP: 10)
    r1_gamma: float = 0.0  # R1 penalty gamma/2 * |grad D(x)|^2 on real data (Mescheder et al.)
    clip: float = 0.0  # WGAN: clip D's weights to [-clip, clip] after every D step
    instance_noise: float = 0.0  # std of Gaussian noise added to D's real and fake inputs ...
    instance_noise_steps: int = 0  # ... annealed linearly to zero over this many steps (0 = constant)
    aux_weight: float = 1.0  # ACGAN: weight of the auxiliary classification terms
    aux_fake: bool = True  # ACGAN: D's class loss also on generated images (Odena et al.); false = real only
    gan_mode: str = "bce"  # translation: D's loss, bce (on logits) | lsgan (least squares, CycleGAN's)
    adv_weight: float = 1.0  # translation: weight of G's adversarial term (0 = no D: an L1-only model)
    l1_weight: float = 100.0  # Pix2Pix: lambda of |G(a) - b|_1 (0 = cGAN only)
    cycle_weight: float = 10.0  # CycleGAN: lambda of both cycle terms |G_BA(G_AB(a)) - a|_1, ...
    identity_weight: float = 0.5  # CycleGAN: identity term |G_AB(b) - b|_1 at this times cycle_weight (0 = off)
    pool_size: int = 50  # CycleGAN: past fakes D is shown (0 = only the newest)


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adam | rmsprop
    lr_g: float = 0.1
    lr_d: float = 0.1
    momentum: float = 0.5  # SGD: initial momentum
    final_momentum: float = 0.7  # SGD: reached linearly ...
    momentum_start_epoch: int = 1  # ... from this epoch ...
    momentum_saturate_epoch: int = 250  # ... to this one (pylearn2 MomentumAdjustor)
    lr_decay: float = 1.000004  # lr <- lr / lr_decay after every update (1.0 = constant)
    min_lr: float = 1e-6
    linear_decay_start: int = 0  # > 0: from this G step both lrs fall linearly to 0 at the last step (CycleGAN)
    betas: list = field(default_factory=lambda: [0.5, 0.999])  # Adam


@dataclass
class TrainConfig:
    batch_size: int = 100
    epochs: int = 0  # stop after this many epochs (0 = use steps)
    steps: int = 0  # stop after this many G updates (overrides epochs when > 0)
    n_dis: int = 1  # k of Algorithm 1: D updates per G update
    simultaneous: bool = True  # k=1 only: update D and G from the same minibatch and forward pass (2014 code)
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads (0 = auto: the cores, shared among the counterfeit trainings running)
    # "bf16": autocast the networks' forward passes to bfloat16 (weights, optimizer state and losses stay fp32);
    # "auto": bf16 where the device computes it natively (AVX-512 BF16 / AMX, bf16 GPUs), else fp32;
    # "fp16" (CUDA only): float16 autocast with a gradient scaler per optimizer group
    precision: str = "auto"
    compile: bool = False  # torch.compile the networks (inductor; a C++ compiler on CPU): the first steps compile
    # convolution weights and image batches: "channels_last" (NHWC) or "contiguous" (NCHW); "auto" is channels_last
    # under bf16 on a CPU, where oneDNN's bf16 / AMX kernels work in NHWC (8-16% faster steps, bench/results/speed.json)
    memory_format: str = "auto"
    # under torchrun on CUDA: BatchNorm statistics over the global batch (SyncBatchNorm); on CPU each rank normalises
    # its own slice of the batch and rank 0's running statistics are broadcast at every forward pass
    sync_batchnorm: bool = False
    sample_every: int = 0  # steps between fixed-noise grids (0 = once per epoch)
    sample_grid: int = 10  # grid is sample_grid x sample_grid
    checkpoint_every: int = 0  # steps between checkpoints (0 = once per epoch)
    log_every: int = 50  # steps between metrics.jsonl rows
    parzen_monitor: bool = True  # cheap Parzen estimate on validation digits at every sample tick
    parzen_monitor_samples: int = 2000
    parzen_monitor_valid: int = 500
    ema_decay: float = 0.0  # > 0 keeps an EMA of G's weights (sampling uses it); decay min(d, (1+t)/(10+t))
    keep_checkpoints: int = 3  # newest checkpoints kept in the run dir (0 = all)
    max_minutes: float = 0.0  # wall-clock budget: stop (sample + checkpoint) once training has run this long (0 = none)
    eval_every: int = 0  # steps between evaluations with the bundled classifier (0 = never); best.pt tracks the best
    eval_metrics: list = field(default_factory=lambda: ["fid", "kid", "pr", "classes"])  # first one picks best.pt
    eval_samples: int = 5000  # generated images per evaluation (scored against the test split)
    eval_extractor: str = ""  # bundled classifier to score with (default: the dataset's own, e.g. mnist)
    # what picks best.pt / best.json: "eval" = the first of fid/kid/is in eval_metrics at every eval_every tick;
    # "parzen" = the Parzen monitor (validation digits, never the test set) at every sample tick, higher is better
    select: str = "eval"
    patience: int = 0  # stop once the selection score has not improved for this many steps (0 = never)


@dataclass
class Config:
    name: str = "run"
    description: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# ---------------------------------------------------------------------------------------------- building


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check/convert one leaf value against its dataclass field type."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise UserError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads '1e-5' (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise UserError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: expected a list, got {value!r}")
        return value
    return value


def _merge(obj: Any, d: dict, prefix: str = "") -> None:
    if not isinstance(d, dict):
        raise UserError(f"{prefix or 'config'}: expected a mapping, got {d!r}")
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in d.items():
        where = f"{prefix}{key}"
        if key not in names:
            known = ", ".join(sorted(names))
            raise UserError(f"unknown config key '{where}' (known here: {known})")
        tp = hints[key]
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _merge(current, value, where + ".")
        else:
            setattr(obj, key, _coerce(value, tp, where))


# settings that take one of a fixed set of strings, and numbers with a floor: checked when a config is read, so a
# typo ends in one line before anything trains (model.noise=gaussian used to train silently with normal noise)
CHOICES = {
    "data.split": ("train", "test", "paper-train", "paper-valid", "all"),
    "data.range": ("01", "pm1"),
    "model.noise": ("uniform", "normal"),
    "model.activation": ("relu", "tanh", "leaky_relu"),
    "model.g_cond": ("concat", "cbn"),
    "model.d_cond": ("none", "concat", "projection", "acgan"),
    "loss.g_loss": ("nonsat", "minimax"),
    "optim.name": ("sgd", "adam", "rmsprop"),
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
    "train.memory_format": ("auto", "channels_last", "contiguous"),
    "train.select": ("eval", "parzen"),
    "data.direction": ("AtoB", "BtoA"),
    "model.norm": ("batch", "instance"),
    "loss.gan_mode": ("bce", "lsgan"),
}
MINIMUM = {"train.batch_size": 1, "train.n_dis": 1, "train.log_every": 1, "train.sample_grid": 1, "model.z_dim": 1,
           "model.pack": 1, "model.num_classes": 0, "train.threads": 0, "train.sample_every": 0,
           "train.checkpoint_every": 0, "train.eval_every": 0, "train.patience": 0, "train.keep_checkpoints": 0,
           "data.limit": 0,
           "data.image_size": 0, "train.max_minutes": 0.0, "data.crop_size": 0,
           "model.unet_depth": 0, "model.n_blocks": 0, "model.patch_layers": 1, "loss.adv_weight": 0.0,
           "loss.l1_weight": 0.0, "loss.cycle_weight": 0.0, "loss.identity_weight": 0.0, "loss.pool_size": 0,
           "train.steps": 0, "train.epochs": 0, "train.eval_samples": 2, "train.parzen_monitor_samples": 2,
           "train.parzen_monitor_valid": 1, "model.d_units": 1, "model.d_pieces": 1, "model.d_layers": 1,
           "model.embed_dim": 1, "model.width_g": 0, "model.width_d": 0, "model.depth_g": 0, "model.depth_d": 0,
           "model.g_out_scale": 0.0, "model.g_init_range": 0.0, "model.d_init_range": 0.0, "loss.gp_weight": 0.0,
           "loss.r1_gamma": 0.0, "loss.clip": 0.0, "loss.instance_noise": 0.0, "loss.instance_noise_steps": 0,
           "loss.aux_weight": 0.0, "optim.lr_g": 0.0, "optim.lr_d": 0.0, "optim.min_lr": 0.0,
           "optim.momentum_start_epoch": 0, "optim.momentum_saturate_epoch": 0, "optim.linear_decay_start": 0}
# settings that live in an interval with an open end: (low, high, low included, high included)
INTERVALS = {"model.d_input_keep": (0.0, 1.0, False, True), "model.d_hidden_keep": (0.0, 1.0, False, True),
             "loss.real_label": (0.0, 1.0, False, True), "loss.d_scale": (0.0, float("inf"), False, False),
             "optim.momentum": (0.0, 1.0, True, False), "optim.final_momentum": (0.0, 1.0, True, False),
             "train.ema_decay": (0.0, 1.0, True, False), "optim.lr_decay": (0.0, float("inf"), False, False)}
# list settings: what each element must be, and how many there are (None = any number)
LISTS = {"model.g_hidden": ("a layer width, an integer >= 1", lambda v: _is_int(v) and v >= 1, None),
         "model.d_hidden": ("a layer width, an integer >= 1", lambda v: _is_int(v) and v >= 1, None),
         "optim.betas": ("a number in [0, 1)", lambda v: _is_num(v) and 0.0 <= v < 1.0, 2),
         "train.eval_metrics": ("a metric name", lambda v: isinstance(v, str), None)}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _interval(low, high, lo_in, hi_in) -> str:
    return f"{'[' if lo_in else '('}{low:g}, {high:g}{']' if hi_in else ')'}"


def _get(cfg: Config, key: str):
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def _leaves(obj, prefix: str = ""):
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            yield from _leaves(v, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", v


def validate(cfg: Config) -> Config:
    """Every setting's type was checked when it was read; here its value: a choice, a floor, an interval, the
    elements of a list, and no NaN or infinity anywhere, so nonsense ends in one line before anything is built."""
    for key, v in _leaves(cfg):
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"{key}: {v} is not a finite number")
    for key, allowed in CHOICES.items():
        v = _get(cfg, key)
        if v not in allowed:
            raise UserError(f"{key}: '{v}' is not one of {', '.join(allowed)}")
    for key, low in MINIMUM.items():
        v = _get(cfg, key)
        if v < low:
            raise UserError(f"{key}: {v} is out of range (at least {low})")
    for key, (low, high, lo_in, hi_in) in INTERVALS.items():
        v = _get(cfg, key)
        if not ((low <= v if lo_in else low < v) and (v <= high if hi_in else v < high)):
            raise UserError(f"{key}: {v} is out of range {_interval(low, high, lo_in, hi_in)}")
    for key, (what, ok, length) in LISTS.items():
        v = _get(cfg, key)
        if length is not None and len(v) != length:
            raise UserError(f"{key}: expected {length} values, got {v!r}")
        bad = [e for e in v if not ok(e)]
        if bad:
            raise UserError(f"{key}: {bad[0]!r} is not {what} (got {v!r})")
    if cfg.data.channels not in (0, 1, 3):
        raise UserError(f"data.channels: {cfg.data.channels} is not one of 0 (infer), 1, 3")
    t = cfg.train
    if t.select == "parzen" and not t.parzen_monitor:
        raise UserError("train.select=parzen picks best.pt by the Parzen monitor: it needs train.parzen_monitor=true")
    if t.patience and t.select == "eval" and not t.eval_every:
        raise UserError("train.patience stops a run whose selection score has stalled: with train.select=eval that "
                        "score needs train.eval_every > 0 (or use train.select=parzen)")
    return cfg


def from_dict(d: dict) -> Config:
    cfg = Config()
    _merge(cfg, d)
    return validate(cfg)


def preset_names() -> list[str]:
    files = resources.files("counterfeit") / "presets"
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def _read_yaml(text: str, source: str) -> dict:
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise UserError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise UserError(f"{source}: expected a mapping of config keys at the top level")
    return d


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_preset_dict(name_or_path: str, _seen: tuple = ()) -> dict:
    """A preset name (see `counterfeit presets`) or a path to a YAML file -> plain dict.

    `base: OTHER` in a preset or file starts from preset OTHER and overrides only what it names, so a variant
    that differs from another in its loss says exactly that.
    """
    p = Path(name_or_path)
    if name_or_path.endswith((".yaml", ".yml")) or p.is_file():
        if not p.is_file():
            raise UserError(f"config file not found: {name_or_path}")
        d = _read_yaml(p.read_text(), str(p))
    else:
        names = preset_names()
        if name_or_path not in names:
            raise UserError(f"unknown preset '{name_or_path}' (known: {', '.join(names)})")
        text = (resources.files("counterfeit") / "presets" / f"{name_or_path}.yaml").read_text()
        d = _read_yaml(text, f"preset {name_or_path}")
        d.setdefault("name", name_or_path)
    if "base" in d:
        base = d.pop("base")
        if base in _seen:
            raise UserError(f"preset {name_or_path}: 'base' chain loops through {base}")
        d = _deep_merge(load_preset_dict(str(base), _seen + (name_or_path,)), d)
    return d


def parse_override(s: str) -> tuple[list[str], Any]:
    """'train.batch_size=64' -> (['train', 'batch_size'], 64); values are parsed as YAML scalars."""
    if "=" not in s:
        raise UserError(f"--set expects key=value, got '{s}'")
    key, raw = s.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"--set expects key=value, got '{s}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    for s in overrides:
        path, value = parse_override(s)
        node = d
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {s}: '{part}' is not a section")
        node[path[-1]] = value
    return d


def load_config(name_or_path: str, overrides: list[str] | None = None) -> Config:
    d = load_preset_dict(name_or_path)
    apply_overrides(d, list(overrides or []))
    return from_dict(d)


def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts, as 'key: a -> b' lines."""
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append(f"{prefix}{key}: {va!r} -> {vb!r}")
    return out


def describe_preset(name: str) -> str:
    d = load_preset_dict(name)
    return str(d.get("description", "")).strip().splitlines()[0] if d.get("description") else ""


