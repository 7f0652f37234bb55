"""Typed configuration: dataclasses, YAML presets, `--set a.b=value` overrides, dump and diff.

A config is a tree of dataclasses. Presets are YAML files holding a partial tree; anything not named
keeps the dataclass default, so `counterfeit train PRESET --dry-run` shows every resolved value.
Unknown keys and wrong types are UserErrors (one line, exit 2), never silently ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError


# what each element of a list setting must be
EACH = {"width": ("a layer width, an integer >= 1", lambda v: _is_int(v) and v >= 1),
        "beta": ("a number in [0, 1)", lambda v: _is_num(v) and 0.0 <= v < 1.0),
        "name": ("a metric name", lambda v: isinstance(v, str)),
        "module": ("a module name", lambda v: isinstance(v, str) and bool(v))}


def setting(default, doc: str, *, choices: tuple | None = None, low=None, within: tuple | None = None,
            each: tuple | None = None, length: int | None = None, resumable: bool = False):
    """A config key, declared once: its default, a one-line doc, and what it may hold (one of `choices`; at least
    `low`; `within` (low, high, low included, high included); a list whose elements are `each` = (what, check), of
    `length` items). `resumable`: it says how long or where to run, not what to train, so it may change on --resume.
    """
    meta = {"doc": doc, "choices": choices, "low": low, "within": within, "each": each, "length": length,
            "resumable": resumable}
    if isinstance(default, list):
        return field(default_factory=functools.partial(list, default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    name: str = setting("mnist", 'mnist | fashion-mnist | cifar10 | embedded | toy name | PATH')
    split: str = setting("paper-train", 'train | test | paper-train (train[0:50000]) | paper-valid | all',
                         choices=('train', 'test', 'paper-train', 'paper-valid', 'all'))
    range: str = setting("01", 'pixel range fed to the nets: "01" ([0, 1], sigmoid G) or "pm1" ([-1, 1], tanh G)',
                         choices=('01', 'pm1'))
    image_size: int = setting(0, 'image folders only: resize + centre crop to this size (0 = keep)', low=0)
    channels: int = setting(0, 'image folders only: 1 or 3 (0 = infer)', choices=(0, 1, 3))
    limit: int = setting(0, 'keep only the first N examples (0 = all)', low=0)
    crop_size: int = setting(0, 'translation: random crop to this size per batch, centre crop at test (0 = none)',
                             low=0)
    flip: bool = setting(False, 'translation: random horizontal flip per batch (a pair shares it)')
    direction: str = setting("AtoB", "translation: AtoB, or BtoA to learn the other way (the authors' --direction)",
                             choices=('AtoB', 'BtoA'))
    labelled_per_class: int = setting(0, "semi-supervised recipes: labelled training images per class, the rest "
                                      "used without labels", low=0)
    labelled_seed: int = setting(1, "semi-supervised recipes: seed of the draw of the labelled images", low=0)


@dataclass
class ModelConfig:
    recipe: str = setting("gan", 'a name in counterfeit.recipes')
    generator: str = setting("mlp", 'a name in counterfeit.nets')
    discriminator: str = setting("maxout", 'a name in counterfeit.nets: the D network')
    z_dim: int = setting(100, "size of G's noise input z", low=1)
    noise: str = setting("uniform", 'uniform: U[-sqrt(3), sqrt(3)] (unit variance, as the 2014 code) | normal | '
                         'uniform1: U[-1, 1] (BiGAN) | uniform01: U[0, 1) (Salimans et al.)',
                         choices=('uniform', 'normal', 'uniform1', 'uniform01'))
    g_hidden: list = setting([1200, 1200], "MLP generator: the hidden layers' widths", each=EACH['width'])
    g_init_range: float = setting(0.05, 'weights ~ U[-r, r]', low=0.0)
    g_output_bias_from_data: bool = setting(True, "sigmoid bias = logit of the data's pixel marginals")
    d_units: int = setting(240, 'maxout D: units per hidden layer', low=1)
    d_pieces: int = setting(5, 'maxout D: linear pieces per unit', low=1)
    d_layers: int = setting(2, 'maxout D: hidden layers', low=1)
    d_init_range: float = setting(0.005, "maxout D: weights ~ U[-r, r]", low=0.0)
    d_input_keep: float = setting(0.8, "dropout keep-probability on D's input pixels", within=(0.0, 1.0, False, True))
    d_hidden_keep: float = setting(0.5, "dropout keep-probability on D's hidden units", within=(0.0, 1.0, False, True))
    width_g: int = setting(0, "base channel width of convolutional G (0 = the architecture's default)", low=0)
    width_d: int = setting(0, "base channel width of convolutional D (0 = the architecture's default)", low=0)
    depth_g: int = setting(0, "Radford G/D: extra 3x3 stride-1 conv blocks at every resolution (0 = the paper's nets)",
                           low=0)
    depth_d: int = setting(0, 'Radford D: extra 3x3 stride-1 conv blocks after every downsampling', low=0)
    d_batchnorm: bool = setting(True, 'Radford D: BatchNorm after every conv but the first')
    g_batchnorm: bool = setting(False, "toy MLP generator: BatchNorm after every hidden layer (PacGAN's 2D G)")
    g_out_scale: float = setting(1.0, "toy MLP generator: output multiplied by this; 0 = the data's std (auto)",
                                 low=0.0)
    spectral_norm: bool = setting(False, 'spectral normalisation on every D layer (SNGAN)')
    num_classes: int = setting(0, '> 0 makes G and D conditional on a label', low=0)
    embed_dim: int = setting(50, 'label embedding size in G (concat)', low=1)
    g_cond: str = setting("concat", 'how G sees the label: concat ([z, embed(y)] at the input) | cbn '
                          '(class-conditional BN)', choices=('concat', 'cbn'))
    d_cond: str = setting("none", 'how D sees the label: none | concat | projection | acgan',
                          choices=('none', 'concat', 'projection', 'acgan'))
    d_hidden: list = setting([128, 128], 'toy MLP discriminator', each=EACH['width'])
    activation: str = setting("relu", 'toy MLPs: relu | tanh | leaky_relu', choices=('relu', 'tanh', 'leaky_relu'))
    pack: int = setting(1, 'PacGAN: D judges `pack` samples at once, concatenated along features / channels', low=1)
    norm: str = setting("batch", 'translation nets: batch | instance normalisation', choices=('batch', 'instance'))
    unet_depth: int = setting(0, 'U-Net levels (0 = as many as the image size allows: 8 at 256x256, 5 at 32x32)', low=0)
    g_dropout: bool = setting(True, "dropout 0.5 in U-Net decoder blocks / ResNet blocks (Pix2Pix's only noise source)")
    n_blocks: int = setting(9, "residual blocks of CycleGAN's ResNet generator (6 at 128x128, 9 at 256x256)", low=0)
    patch_layers: int = setting(3, 'PatchGAN: stride-2 layers; receptive field 16, 34, 70 for 1, 2, 3', low=1)
    encoder: str = setting("auto", "inference recipes: the encoder E (x -> z), a name in counterfeit.nets; auto = "
                           "conv-e for a convolutional G, mlp-e for an MLP one")
    e_hidden: list = setting([1024, 1024], "mlp-e: the hidden layers' widths", each=EACH['width'])
    width_e: int = setting(0, "conv-e: base channel width (0 = 64)", low=0)
    from_run: str = setting("", "recipe encoder: the trained run (or checkpoint) whose generator E learns to invert; "
                            "its data, z and G come with it (`counterfeit train encoder --from RUN`)")


@dataclass
class LossConfig:
    g_loss: str = setting("nonsat", 'nonsat: -log D(G(z)) | minimax: log(1 - D(G(z))) (the saturating one)',
                          choices=('nonsat', 'minimax'))
    d_scale: float = setting(0.5, "D's objective is d_scale * (BCE(real) + BCE(fake)); 0.5 in the 2014 code",
                             within=(0.0, math.inf, False, False))
    real_label: float = setting(1.0, '< 1 is one-sided label smoothing (Salimans et al.: 0.9); BCE recipes only',
                                within=(0.0, 1.0, False, True))
    gp_weight: float = setting(0.0, 'gradient penalty on real/fake interpolates (WGAN-GP: 10)', low=0.0)
    r1_gamma: float = setting(0.0, 'R1 penalty gamma/2 * |grad D(x)|^2 on real data (Mescheder et al.)', low=0.0)
    clip: float = setting(0.0, "WGAN: clip D's weights to [-clip, clip] after every D step", low=0.0)
    instance_noise: float = setting(0.0, "std of Gaussian noise added to D's real and fake inputs ...", low=0.0)
    instance_noise_steps: int = setting(0, '... annealed linearly to zero over this many steps (0 = constant)', low=0)
    aux_weight: float = setting(1.0, 'ACGAN: weight of the auxiliary classification terms', low=0.0)
    unsup_weight: float = setting(1.0, "semi-supervised GAN: weight of D's unlabelled (real / fake) terms beside the "
                                  "labelled cross-entropy; 0 = the same D trained on the labels alone", low=0.0)
    aux_fake: bool = setting(True, "ACGAN: D's class loss also on generated images (Odena et al.); false = real only")
    gan_mode: str = setting("bce", "translation: D's loss, bce (on logits) | lsgan (least squares, CycleGAN's)",
                            choices=('bce', 'lsgan'))
    adv_weight: float = setting(1.0, "translation: weight of G's adversarial term (0 = no D: an L1-only model)",
                                low=0.0)
    l1_weight: float = setting(100.0, 'Pix2Pix: lambda of |G(a) - b|_1 (0 = cGAN only)', low=0.0)
    cycle_weight: float = setting(10.0, 'CycleGAN: lambda of both cycle terms |G_BA(G_AB(a)) - a|_1, ...', low=0.0)
    identity_weight: float = setting(0.5, 'CycleGAN: identity term |G_AB(b) - b|_1 at this times cycle_weight (0 = '
                                     'off)', low=0.0)
    pool_size: int = setting(50, 'CycleGAN: past fakes D is shown (0 = only the newest)', low=0)


@dataclass
class OptimConfig:
    name: str = setting("sgd", 'sgd | adam | rmsprop', choices=('sgd', 'adam', 'rmsprop'))
    lr_g: float = setting(0.1, "G's learning rate", low=0.0)
    lr_d: float = setting(0.1, "D's learning rate", low=0.0)
    momentum: float = setting(0.5, 'SGD: initial momentum', within=(0.0, 1.0, True, False))
    final_momentum: float = setting(0.7, 'SGD: reached linearly ...', within=(0.0, 1.0, True, False))
    momentum_start_epoch: int = setting(1, '... from this epoch ...', low=0)
    momentum_saturate_epoch: int = setting(250, '... to this one (pylearn2 MomentumAdjustor)', low=0)
    lr_decay: float = setting(1.000004, 'lr <- lr / lr_decay after every update (1.0 = constant)',
                              within=(0.0, math.inf, False, False))
    min_lr: float = setting(1e-6, 'the floor lr_decay stops at', low=0.0)
    linear_decay_start: int = setting(0, '> 0: from this G step both lrs fall linearly to 0 at the last step '
                                      '(CycleGAN)', low=0)
    betas: list = setting([0.5, 0.999], 'Adam', each=EACH['beta'], length=2)
    eps: float = setting(1e-8, "Adam: added to the root of the second moment (ssgan: 1e-4, for improved-gan's 1e-8 "
                         "inside the root, which keeps a nearly won D from taking full steps on tiny gradients)",
                         within=(0.0, math.inf, False, False))
    weight_decay: float = setting(0.0, "L2 penalty added to every gradient (Adam's coupled weight_decay; BiGAN: "
                                  "2.5e-5)", low=0.0)


@dataclass
class TrainConfig:
    batch_size: int = setting(100, 'the global minibatch (under torchrun each process takes its share)', low=1)
    epochs: int = setting(0, 'stop after this many epochs (0 = use steps)', low=0, resumable=True)
    steps: int = setting(0, 'stop after this many G updates (overrides epochs when > 0)', low=0, resumable=True)
    n_dis: int = setting(1, 'k of Algorithm 1: D updates per G update', low=1)
    simultaneous: bool = setting(True, 'k=1 only: update D and G from the same minibatch and forward pass (2014 code)')
    seed: int = setting(0, "the run's seed: initial weights, data order, noise, dropout (0 to 2^63 - 1)",
                        within=(0, 2**63 - 1, True, True))
    device: str = setting("cpu", 'cpu | cuda | cuda:N', resumable=True)
    threads: int = setting(0, 'torch intra-op threads (0 = auto: the cores, shared among the counterfeit trainings '
                           'running)', low=0, resumable=True)
    precision: str = setting("auto", '"bf16": autocast the networks\' forward passes to bfloat16 (weights, optimizer '
                             'state and losses stay fp32); "auto": bf16 where the device computes it natively '
                             '(AVX-512 BF16 / AMX, bf16 GPUs), else fp32; "fp16" (CUDA only): float16 autocast with '
                             'a gradient scaler per optimizer group', choices=('auto', 'fp32', 'bf16', 'fp16'),
                             resumable=True)
    compile: bool = setting(False, 'torch.compile the networks (inductor; a C++ compiler on CPU): the first steps '
                            'compile', resumable=True)
    memory_format: str = setting("auto", 'convolution weights and image batches: "channels_last" (NHWC) or '
                                 '"contiguous" (NCHW); "auto" is channels_last under bf16 on a CPU, where oneDNN\'s '
                                 'bf16 / AMX kernels work in NHWC (faster steps: bench/results/speed.json)',
                                 choices=('auto', 'channels_last', 'contiguous'), resumable=True)
    sync_batchnorm: bool = setting(False, "under torchrun on CUDA: BatchNorm statistics over the global batch "
                                   "(SyncBatchNorm); on CPU each rank normalises its own slice of the batch and "
                                   "rank 0's running statistics are broadcast at every forward pass")
    sample_every: int = setting(0, 'steps between fixed-noise grids (0 = once per epoch)', low=0)
    sample_grid: int = setting(10, 'grid is sample_grid x sample_grid', low=1)
    checkpoint_every: int = setting(0, 'steps between checkpoints (0 = once per epoch)', low=0)
    log_every: int = setting(50, 'steps between metrics.jsonl rows', low=1)
    parzen_monitor: bool = setting(True, 'cheap Parzen estimate on validation digits at every sample tick')
    parzen_monitor_samples: int = setting(2000, "G's samples per Parzen monitor estimate", low=2)
    parzen_monitor_valid: int = setting(500, 'held-out images the Parzen monitor scores', low=1)
    ema_decay: float = setting(0.0, "> 0 keeps an EMA of G's weights (sampling uses it); decay min(d, (1+t)/(10+t))",
                               within=(0.0, 1.0, True, False))
    keep_checkpoints: int = setting(3, 'newest checkpoints kept in the run dir (0 = all)', low=0)
    max_minutes: float = setting(0.0, 'wall-clock budget: stop (sample + checkpoint) once training has run this '
                                 'long (0 = none)', low=0.0, resumable=True)
    eval_every: int = setting(0, 'steps between evaluations with the bundled classifier (0 = never); best.pt tracks '
                              'the best', low=0, resumable=True)
    eval_metrics: list = setting(["fid", "kid", "pr", "classes"], 'first one picks best.pt', each=EACH['name'])
    eval_samples: int = setting(5000, 'generated images per evaluation (scored against the test split)', low=2,
                                resumable=True)
    eval_extractor: str = setting("", "bundled classifier to score with (default: the dataset's own, e.g. mnist), "
                                  "or inception (the inception extra's FID Inception)")
    select: str = setting("eval", 'what picks best.pt / best.json: "eval" = the first of fid/kid/is in eval_metrics '
                          'at every eval_every tick; "parzen" = the Parzen monitor (validation digits, never the '
                          'test set) at every sample tick, higher is better', choices=('eval', 'parzen'))
    patience: int = setting(0, 'stop once the selection score has not improved for this many steps (0 = never)',
                            low=0, resumable=True)


@dataclass
class Config:
    name: str = setting("run", "the config's name (a preset's own); the default run dir is runs/NAME")
    description: str = setting("", 'what the preset reproduces, in words', resumable=True)
    imports: list = setting([], "modules imported before anything is built: plugins that register their own nets or "
                            "recipes (a run records them; sample, evaluate and load import them again)",
                            each=EACH["module"])
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


def settings(obj=None, prefix: str = ""):
    """(dotted key, dataclasses.Field, type) of every leaf setting of a Config, in declaration order."""
    obj = obj if obj is not None else Config()
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            yield from settings(v, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, hints[f.name]


def resumable_keys() -> set[str]:
    """Keys that may change on --resume: how long or where to run, not what to train."""
    return {key for key, f, _ in settings() if f.metadata.get("resumable")}


def describe_range(f) -> str:
    """A setting's allowed values in words ('' where any value of its type goes)."""
    m = f.metadata
    if m.get("choices"):
        return " | ".join(str(c) for c in m["choices"])
    if m.get("low") is not None:
        return f">= {m['low']:g}"
    if m.get("within"):
        return _interval(*m["within"])
    if m.get("each"):
        return f"list of {m['each'][0]}" + (f", {m['length']} of them" if m.get("length") else "")
    return ""


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _interval(low, high, lo_in, hi_in) -> str:
    def num(v):
        return str(v) if isinstance(v, int) else f"{v:g}"

    return f"{'[' if lo_in else '('}{num(low)}, {num(high)}{']' if hi_in else ')'}"


def get(cfg: Config, key: str):
    """The value of a dotted key ('train.batch_size')."""
    obj = cfg
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def validate(cfg: Config) -> Config:
    """Every setting's type was checked when it was read; here its value, against what its field declares (a
    choice, a floor, an interval, the elements of a list) and no NaN or infinity anywhere, so nonsense ends in one
    line before anything is built."""
    for key, f, _ in settings():
        check_value(key, get(cfg, key), f.metadata)
    t = cfg.train
    if t.select == "parzen" and not t.parzen_monitor:
        raise UserError("train.select=parzen picks best.pt by the Parzen monitor: it needs train.parzen_monitor=true")
    if t.patience and t.select == "eval" and not t.eval_every:
        raise UserError("train.patience stops a run whose selection score has stalled: with train.select=eval that "
                        "score needs train.eval_every > 0 (or use train.select=parzen)")
    return cfg


def check_value(key: str, v, m) -> None:
    if isinstance(v, float) and not math.isfinite(v):
        raise UserError(f"{key}: {v} is not a finite number")
    if m.get("choices") is not None and v not in m["choices"]:
        raise UserError(f"{key}: '{v}' is not one of {', '.join(str(c) for c in m['choices'])}")
    if m.get("low") is not None and v < m["low"]:
        raise UserError(f"{key}: {v} is out of range (at least {m['low']})")
    if m.get("within") is not None:
        low, high, lo_in, hi_in = m["within"]
        if not ((low <= v if lo_in else low < v) and (v <= high if hi_in else v < high)):
            raise UserError(f"{key}: {v} is out of range {_interval(low, high, lo_in, hi_in)}")
    if m.get("each") is not None:
        if m.get("length") is not None and len(v) != m["length"]:
            raise UserError(f"{key}: expected {m['length']} values, got {v!r}")
        what, ok = m["each"]
        bad = [e for e in v if not ok(e)]
        if bad:
            raise UserError(f"{key}: {bad[0]!r} is not {what} (got {v!r})")


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
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{p}: not a UTF-8 text file (byte {e.start}); a config is YAML text") from None
        d = _read_yaml(text, str(p))
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


def apply_overrides(d: dict, overrides) -> dict:
    """Set dotted keys in a config dict: a list of 'key=value' strings (the CLI's --set), or a mapping
    {'optim.lr_d': 1e-4} whose values are taken as they are (Python's own types)."""
    items = overrides.items() if isinstance(overrides, dict) else [parse_override(s) for s in overrides]
    for path, value in items:
        path = path.split(".") if isinstance(path, str) else path
        s = f"{'.'.join(path)}={value!r}"
        node = d
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {s}: '{part}' is not a section")
        node[path[-1]] = value
    return d


def load_config(name_or_path: str, overrides=None) -> Config:
    """A preset name (`counterfeit presets`) or a YAML file, with overrides: 'key=value' strings or a mapping
    {'train.steps': 500}. Unknown keys, wrong types and out-of-range values raise UserError."""
    d = load_preset_dict(name_or_path)
    apply_overrides(d, overrides or [])
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


