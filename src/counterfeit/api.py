"""The Python API: train a preset (or your own networks on a preset's recipe) from a notebook or a script, open any
run, and sample, look, score, continue and export it. The CLI calls the same functions.

    import counterfeit as cf
    run = cf.train("quickstart", steps=2000, seed=1)   # a progress bar in the cell; Ctrl-C checkpoints and stops
    run.grid(64)                                       # a PIL image
    run.evaluate(["fid", "kid", "classes"], n=5000)    # the numbers `counterfeit evaluate` prints
    run = run.train(steps=4000)                        # the same run continued, bit for bit
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
from pathlib import Path

import torch

from . import config as config_mod
from . import registry
from .errors import TrainingStopped, UserError
from .hooks import Every, Hook

# the CLI's words in an error, and what a Python caller passes instead
_PYTHON_WORDS = [("--allow-config-change", "allow_config_change=True"), ("--resume", "resume=True"),
                 ("--steps", "steps="), ("--epochs", "epochs="), ("--set", "overrides"), ("--seed", "seed="),
                 ("--device", "device="), ("--out", "out="), ("--data", "overrides={'data.name': ...}"),
                 ("--import", "imports=")]


@contextlib.contextmanager
def python_words():
    """Errors raised inside name the Python arguments, not the CLI's flags (the same exception class and code)."""
    try:
        yield
    except (UserError, TrainingStopped) as e:
        msg = re.sub(r"--(steps|epochs|seed) (-?\d+)", r"\1=\2", str(e))
        for flag, word in _PYTHON_WORDS:
            msg = re.sub(re.escape(flag) + r"(?![\w-])", word, msg)
        e.args = (msg,)
        raise


def presets() -> dict[str, str]:
    """Every preset's name and its one-line description."""
    return {n: config_mod.describe_preset(n) for n in config_mod.preset_names()}


def resolve(what, *, steps=None, epochs=None, seed=None, overrides=None, device=None, data=None,
            imports=()) -> config_mod.Config:
    """A Config from a preset name, a YAML path, a Config or a dict, with the call's settings applied.
    steps / epochs set how long (one of them); overrides: {'optim.lr_d': 1e-4} or ['optim.lr_d=1e-4']."""
    if isinstance(what, config_mod.Config):
        d = what.to_dict()
    elif isinstance(what, (str, Path)) and (Path(what) / "config.json").is_file():  # a run dir: its own config
        try:
            d = json.loads((Path(what) / "config.json").read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{Path(what) / 'config.json'} is not valid JSON: {e}") from None
    elif isinstance(what, dict):
        d = copy.deepcopy(what)
    else:
        d = config_mod.load_preset_dict(str(what))
    config_mod.apply_overrides(d, overrides or [])
    sets = {}
    if data is not None:
        sets["data.name"] = data
        if data != "mnist":
            sets["data.split"] = "train"  # the paper split exists for full MNIST only
    for flag, value, implied in (("--steps", steps, {"train.steps": steps, "train.epochs": 0}),
                                 ("--epochs", epochs, {"train.epochs": epochs, "train.steps": 0})):
        if value is None:
            continue
        if value <= 0:
            raise UserError(f"nothing to do: {flag} {value} (give a positive number of "
                            f"{'G updates' if flag == '--steps' else 'epochs'})")
        refuse_conflicts(flag, value, implied, overrides or [])
        sets.update(implied)
    if seed is not None:
        sets["train.seed"] = seed
    if device is not None:
        sets["train.device"] = device
    if imports:
        sets["imports"] = list(dict.fromkeys([*d.get("imports", []), *imports]))
    from .recipes.inference import inherit_from_source  # an encoder for a trained G takes its data, z from that run

    d = config_mod.apply_overrides(d, sets)
    config_mod.from_dict(d)  # every key and value checked before the source run is looked for
    return config_mod.from_dict(inherit_from_source(d))


def refuse_conflicts(flag: str, value: int, implied: dict, overrides) -> None:
    """`--steps 5 --set train.steps=9` says two things; which one wins is not the user's guess to make."""
    items = overrides.items() if isinstance(overrides, dict) else \
        [(".".join(k), v) for k, v in map(config_mod.parse_override, overrides)]
    for key, v in items:
        if key in implied and v != implied[key]:
            raise UserError(f"{flag} {value} conflicts with --set {key}={v}: give one of them")


def free_run_dir(name: str, root: Path = Path("runs")) -> Path:
    """runs/NAME, or NAME-2, NAME-3... where that holds something already (a notebook cell run again)."""
    for i in range(1, 10_000):
        p = root / (name if i == 1 else f"{name}-{i}")
        if not p.exists() or (p.is_dir() and not any(p.iterdir())):
            return p
    raise UserError(f"{root} holds {name} up to {name}-9999; choose an out=")


def train(what, *, out=None, steps=None, epochs=None, seed=None, overrides=None, resume=False,
          allow_config_change=False, hooks=(), nets=None, device=None, data=None, imports=(),
          progress=True) -> "Run":
    """Train a preset name, YAML file, Config or dict; returns the Run.

    out: the run dir (None: runs/<name>, then -2, -3... when taken; with resume, runs/<name>). hooks: Hook objects
    or `every(n, fn)`, run after the built-in side jobs. nets: {"G": module, "D": module} to train your own networks
    on the preset's recipe (G: (B, z_dim) -> (B, C, H, W) in data.range; D: (B, C, H, W) -> (B,) logits); the run
    records their classes (see `load`). imports: plugin modules that register nets or recipes (recorded in the
    run). Errors are the CLI's (UserError, Diverged, Interrupted), in Python's words."""
    with python_words():
        if any(not isinstance(h, Hook) for h in hooks):
            raise UserError("hooks= takes Hook objects, e.g. counterfeit.every(500, fn)")
        cfg = resolve(what, steps=steps, epochs=epochs, seed=seed, overrides=overrides, device=device, data=data,
                      imports=imports)
        named = own_nets(cfg, nets) if nets else {}
        path = Path(out) if out is not None else (Path("runs") / cfg.name if resume else free_run_dir(cfg.name))
        result = train_config(cfg, path, resume=resume, allow_config_change=allow_config_change, progress=progress,
                              hooks=hooks, named=named)
    run = Run(path, nets={k: copy.deepcopy(m) for k, m in nets.items()} if nets else None)
    run.result = result
    return run


def train_config(cfg, out, *, resume=False, allow_config_change=False, progress=True, hooks=(), named=None):
    """The loop on a resolved Config (what `counterfeit train` and train() both call); returns loop.RunResult."""
    from .loop import train as run_loop

    with registry.provided(named or {}):
        return run_loop(cfg, Path(out), resume=resume, allow_config_change=allow_config_change, progress=progress,
                        hooks=hooks)


def own_nets(cfg, nets: dict) -> dict:
    """Record a caller's G and D in cfg (by class) and check them against the contract on a tiny batch."""
    if set(nets) - {"G", "D"} or not nets:
        raise UserError(f"nets= takes {{'G': module, 'D': module}} (either or both), got {sorted(nets)}")
    if not all(isinstance(m, torch.nn.Module) for m in nets.values()):
        raise UserError("nets= takes torch.nn.Module instances")
    if "G" in nets and "D" in nets and type(nets["G"]) is type(nets["D"]):
        raise UserError("nets=: G and D must be different classes (a run records each by its class)")
    from . import recipes  # noqa: F401  (registers every recipe)

    recipe_cls = registry.get("recipe", cfg.model.recipe)
    if not hasattr(recipe_cls, "sample_z"):
        raise UserError(f"nets= replaces G and D of a noise-to-image recipe; '{cfg.model.recipe}' is not one")
    named = {}
    for role, key in (("G", "generator"), ("D", "discriminator")):
        if role in nets:
            setattr(cfg.model, key, registry.class_name(nets[role]))
            named[getattr(cfg.model, key)] = nets[role]
    return named


def load(path, nets: dict | None = None) -> "Run":
    """Open a run dir, a checkpoint file (what `counterfeit sample` reads) or a safetensors export folder. nets: the networks again, for a run
    trained on your own classes that cannot be rebuilt from their class alone (a class defined in a notebook
    session that has ended, or one whose constructor takes arguments); their weights are loaded into them."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"no run or checkpoint at {p}")
    run = Run(p, nets=nets)
    with python_words():
        run.recipe  # noqa: B018  (refuse now what cannot be loaded)
    return run


def every(n: int, fn) -> Every:
    """A hook: fn(run) every n steps and after the last one, on rank 0, with `run` a view of the training in
    progress (run.grid(16), run.samples(...), run.step); a dict of numbers it returns is logged as a metrics row."""
    return Every(n, functools.partial(with_live_run, fn))


def with_live_run(fn, loop):
    """fn(run) with every network in eval mode and the training's random streams set aside: whatever the
    function draws, the run goes on exactly as it would have without it."""
    from .hooks import eval_mode

    st = loop.state
    devices = [loop.device] if loop.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), eval_mode(st.recipe.nets.values(), st.ema.values()):
        return fn(LiveRun(loop))


class Run:
    """A run dir: what it trained, its metrics, and its generator exactly as `counterfeit sample` uses it (the moving
    average of G's weights where the run kept one, in eval mode)."""

    def __init__(self, path, nets: dict | None = None):
        self.path = Path(path)
        self._nets, self._loaded = nets, None

    # ------------------------------------------------------------------ what it is
    def _load(self):
        if self._loaded is None:
            from .export import SPEC, load_export
            from .sampling import load_generator

            if (self.path / SPEC).is_file():  # an export folder (safetensors)
                self._loaded = load_export(self.path)
            else:
                self._loaded = load_generator(self.path, nets=self._nets)
        return self._loaded

    @property
    def recipe(self):
        return self._load()[0]

    @property
    def config(self) -> config_mod.Config:
        return self._load()[1]

    @property
    def step(self) -> int:
        return self._load()[2]["step"]

    @property
    def generator(self) -> torch.nn.Module:
        """The network `sample` / `translate` runs (EMA weights where kept), in eval mode."""
        net = self.recipe.nets.get(self.recipe.sampler_net)
        return self.recipe.G if net is None else net  # an encoder run: its source's G

    @property
    def metrics(self):
        """metrics.jsonl's rows: a pandas DataFrame where pandas is installed, else a list of dicts."""
        from .viz.curves import read_metrics

        rows = read_metrics(self.path / "metrics.jsonl") if self.path.is_dir() else []
        try:
            import pandas as pd
        except ImportError:
            return rows
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ what it makes
    def samples(self, n: int = 64, label: int | None = None, seed: int = 0) -> torch.Tensor:
        """n samples as uint8 (n, C, H, W); label: a class of a conditional run."""
        from .sampling import generate

        recipe = self._sampler()
        labels = None
        if label is not None:
            if not getattr(recipe, "conditional", False):
                raise UserError(f"label= needs a conditional run; '{recipe.cfg.model.recipe}' is unconditional")
            if not 0 <= label < recipe.num_classes:
                raise UserError(f"label must be in 0..{recipe.num_classes - 1}, got {label}")
            labels = torch.full((n,), label, dtype=torch.long)
        return generate(recipe, n, seed=seed, labels=labels, G=self.generator, device=self._device())

    def grid(self, n: int = 64, label: int | None = None, seed: int = 0, nrow: int | None = None, scale: int = 2):
        """A PIL image of n samples in a grid (shown inline in a notebook)."""
        from .viz.grid import make_grid, to_pil

        return to_pil(make_grid(self.samples(n, label, seed), nrow), scale)

    def interpolate(self, steps: int = 10, seed: int = 0, mode: str = "slerp", label: int | None = None):
        """A walk through z from one random point to another: uint8 (steps, C, H, W) (slerp or lerp)."""
        from .data import to_uint8
        from .viz.interpolate import lerp, slerp

        recipe = self._sampler()
        if mode not in ("slerp", "lerp"):
            raise UserError(f"mode must be slerp or lerp, got {mode!r}")
        z = recipe.sample_z(2, generator=torch.Generator().manual_seed(seed))
        zs = (slerp if mode == "slerp" else lerp)(z[:1], z[1:], torch.linspace(0, 1, steps))[0]  # (steps, z_dim)
        y = None if label is None else torch.full((steps,), label, dtype=torch.long)
        with torch.no_grad():
            x = recipe.generate(zs.to(self._device()), None if y is None else y.to(self._device()), G=self.generator)
        return to_uint8(x.float().cpu(), recipe.cfg.data.range)

    def translate(self, x, direction: str = "AtoB"):
        """Images through a Pix2Pix / CycleGAN generator: a uint8 tensor (N, C, H, W) or (C, H, W), or a PIL
        image; the same kind comes back."""
        from .data import to_float
        from .metrics.translation import run_nets
        from .recipes.translation import Translation

        recipe = self.recipe
        if not isinstance(recipe, Translation):
            raise UserError(f"a '{recipe.cfg.model.recipe}' run draws from noise: use samples() / grid()")
        recipe.check_direction(direction)
        t, kind = as_uint8_batch(x, recipe.in_channels(direction))
        recipe.check_size(*t.shape[2:], direction)
        y = run_nets(lambda b: recipe.translate(b, direction), to_float(t, "pm1"))
        return from_uint8_batch(y, kind)

    def encode(self, x) -> torch.Tensor:
        """Images -> z through the run's encoder E (an encoder run, BiGAN / ALI): a uint8 tensor (N, C, H, W) or
        (C, H, W), or a PIL image -> float z (N, z_dim)."""
        from .data import to_float

        recipe = self._encoder()
        t, _ = as_uint8_batch(x, recipe.shape[0], "encode")
        if tuple(t.shape[1:]) != tuple(recipe.shape):
            raise UserError(f"encode: images are {tuple(t.shape[1:])}, this run's are {tuple(recipe.shape)}")
        x = to_float(t, recipe.cfg.data.range).to(self._device())
        with torch.no_grad():
            return recipe.encode(x, E=self._live_encoder()).float().cpu()

    def reconstruct(self, x):
        """G(E(x)) for images given as to encode(); the same kind comes back."""
        from .data import to_uint8

        recipe = self._encoder()
        z = self.encode(x)
        _, kind = as_uint8_batch(x, recipe.shape[0], "reconstruct")
        with torch.no_grad():
            y = recipe.generate(z.to(self._device()), G=self.generator)
        return from_uint8_batch(to_uint8(y.float().cpu(), recipe.cfg.data.range), kind)

    def _encoder(self):
        recipe = self.recipe
        if not hasattr(recipe, "encode"):
            raise UserError(no_encoder(recipe, self.path))
        return recipe

    def evaluate(self, metrics=None, n: int = 10000, seed: int = 0, **kw) -> dict:
        """The scores `counterfeit evaluate RUN --metrics ...` prints (metrics.evaluate.evaluate's dict)."""
        from .metrics.evaluate import evaluate

        with python_words():
            return evaluate(self.path, metrics, n=n, seed=seed, loaded=self._load(), **kw)

    def train(self, steps: int | None = None, epochs: int | None = None, **kw) -> "Run":
        """Continue this run (from its latest checkpoint) to `steps` or `epochs` in all: bit for bit the run an
        uninterrupted call would have made."""
        return train(self.path, out=self.path, steps=steps, epochs=epochs, resume=True, nets=self._nets, **kw)

    def export(self, out, format: str = "safetensors") -> Path:
        """The generator(s) as safetensors, TorchScript or ONNX in the folder `out`, beside generator.json (how to
        call them); see counterfeit.export."""
        from .export import export

        with python_words():
            return export(self, out, format)

    # ------------------------------------------------------------------ helpers
    def _sampler(self):
        recipe = self.recipe
        if not hasattr(recipe, "sample_z"):
            raise UserError(f"a '{recipe.cfg.model.recipe}' run translates images: use translate()")
        return recipe

    def _device(self):
        return next(self.generator.parameters()).device

    def _live_encoder(self):
        return None  # a loaded run's nets already hold the moving averages where it kept them

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def _repr_html_(self) -> str:
        """The last preview grid and the last metrics row, for a notebook."""
        return run_html(self.path)


class LiveRun(Run):
    """The training in progress, as a hook made by every() sees it: the generator sampling uses now (EMA where
    kept); the hook runs with every network in eval mode and the training's random state set aside."""

    def __init__(self, loop):
        super().__init__(loop.run)
        self.loop = loop

    def _load(self):
        st = self.loop.state
        return st.recipe, self.loop.cfg, {"path": str(self.loop.run), "step": st.step, "ema": bool(st.ema)}

    @property
    def generator(self):
        st = self.loop.state
        net = st.nets_for_sampling().get(st.recipe.sampler_net)
        return st.recipe.G if net is None else net  # an encoder run: its source's G

    def _live_encoder(self):
        return self.loop.state.ema.get("E")  # E's moving average beside G's, as a loaded run would pair them


def no_encoder(recipe, path) -> str:
    """Why a run cannot encode, and what would."""
    name = recipe.cfg.model.recipe
    if getattr(recipe, "conditional", False) or not hasattr(recipe, "sample_z"):
        return f"a '{name}' run has no encoder, and an encoder is trained for an unconditional noise-to-image G only"
    return f"a '{name}' run has no encoder: train one for its G with `counterfeit train encoder --from {path}`"


def as_uint8_batch(x, channels: int, what: str = "translate"):
    """A PIL image or a uint8 tensor (C, H, W) / (N, C, H, W) -> (uint8 (N, C, H, W), what kind it was)."""
    import numpy as np
    from PIL import Image

    if isinstance(x, Image.Image):
        a = np.asarray(x.convert("L" if channels == 1 else "RGB"))
        t = torch.from_numpy(a.copy()).reshape(a.shape[0], a.shape[1], -1).permute(2, 0, 1)[None]
        return t, "pil"
    if not torch.is_tensor(x) or x.dtype != torch.uint8 or x.dim() not in (3, 4):
        raise UserError(f"{what} takes a PIL image or a uint8 tensor (C, H, W) or (N, C, H, W)")
    if x.shape[-3] != channels:
        takes = "this direction" if what == "translate" else "this run"
        raise UserError(f"{what}: images have {x.shape[-3]} channel(s), {takes} takes {channels}")
    return (x[None], "one") if x.dim() == 3 else (x, "batch")


def from_uint8_batch(y: torch.Tensor, kind: str):
    from PIL import Image

    if kind == "pil":
        a = y[0].permute(1, 2, 0).numpy()
        return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
    return y[0] if kind == "one" else y


def run_html(path: Path) -> str:
    import base64
    import html

    grids = sorted((path / "samples").glob("step-*.png")) if path.is_dir() else []
    img = ""
    if grids:
        data = base64.b64encode(grids[-1].read_bytes()).decode()
        img = f'<img src="data:image/png;base64,{data}" style="image-rendering:pixelated;max-width:360px">'
    rows = (path / "metrics.jsonl").read_text().splitlines() if (path / "metrics.jsonl").is_file() else []
    last = json.loads(rows[-1]) if rows else {}
    cells = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{v:.4g}</td></tr>" if isinstance(v, float) else
                    f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in last.items())
    return f"<div><b>{html.escape(str(path))}</b><br>{img}<table>{cells}</table></div>"
