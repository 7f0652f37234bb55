"""Learned approximate inference, the 2014 paper's future work: "an auxiliary network trained to predict z given x
... for a fixed generator after the generator has finished training".

encoder  E learns to predict z from G(z) for a G trained before and held fixed: the loss is the squared error
         |E(G(z)) - z|^2 (mean over z's dimensions) on fresh noise at every step; G is the run's sampling network
         (its moving average where kept), in eval mode, never updated and not part of this run's checkpoints, which
         record the source's path and step instead (a source trained further is refused: E would be stale).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import checkpoint as ckpt
from .. import registry
from ..errors import UserError
from .base import Losses, OptGroup, Phase, Recipe, make_optimizer

CONDITIONAL = ("cgan", "acgan")  # recipes whose G takes a label (a NoiseGAN with model.num_classes > 0)


def source_config(from_run: str) -> tuple[dict, Path]:
    """The config (as a dict) of the run or checkpoint an encoder inverts, and its checkpoint's path."""
    if not from_run:
        raise UserError("recipe 'encoder' inverts a trained generator: name it with --from RUN (model.from_run)")
    path = ckpt.resolve(Path(from_run).expanduser())
    try:
        return json.loads(ckpt.safe_load(path)["config"]), path
    except (json.JSONDecodeError, KeyError) as e:
        raise UserError(f"{path}: unreadable config inside checkpoint ({e})") from None


def inherit_from_source(d: dict) -> dict:
    """An encoder's config takes its data and z from the run it inverts (a config dict, in place and returned)."""
    m = d.setdefault("model", {})
    if m.get("recipe") != "encoder":
        return d
    src, path = source_config(m.get("from_run", ""))
    sm = src.get("model", {})
    recipe = sm.get("recipe")
    conditional = recipe in CONDITIONAL or (sm.get("num_classes", 0) and recipe in ("gan", "dcgan", "lsgan", "wgan",
                                                                                     "wgan-gp", "hinge"))
    if recipe in ("pix2pix", "cyclegan", "vae", "encoder") or conditional:
        raise UserError(f"{path}: recipe '{recipe}'{' (conditional)' if conditional else ''} has no unconditional "
                        "G(z) to invert (an encoder is for a noise-to-image GAN)")
    if str(src["data"].get("name", "")).startswith("toy:"):
        raise UserError(f"{path}: a 2D toy run makes points, not images; an encoder inverts an image generator")
    d["data"] = src["data"]
    # the checkpoint itself, not the run dir: a source trained on afterwards keeps this encoder's G where it was
    m.update(z_dim=sm["z_dim"], noise=sm["noise"], from_run=str(path.expanduser().resolve()))
    if m.get("encoder", "auto") == "auto":
        m["encoder"] = "mlp-e" if "mlp" in str(sm.get("generator")) else "conv-e"
    return d


@registry.register("recipe", "encoder")
class FixedGEncoder(Recipe):
    """Group "E" only; the source run's G generates every batch E learns from."""

    sampler_net = "G"

    def __init__(self, cfg, shape, data=None):
        from ..sampling import load_generator

        super().__init__(cfg, shape, data)
        if not cfg.model.from_run:
            raise UserError("recipe 'encoder' inverts a trained generator: name it with --from RUN (model.from_run)")
        if cfg.train.parzen_monitor or cfg.train.eval_every:
            raise UserError("recipe 'encoder' trains E for a fixed G: the Parzen monitor and train.eval_every score "
                            "a generator that does not change here (set train.parzen_monitor=false, eval_every=0)")
        self.source, scfg, sinfo = load_generator(cfg.model.from_run)
        if tuple(scfg.data.__dict__.items()) != tuple(cfg.data.__dict__.items()) or \
                scfg.model.z_dim != cfg.model.z_dim:
            raise UserError(f"model.from_run {cfg.model.from_run}: its data and z differ from this config's "
                            "(an encoder takes them from its source: set model.from_run, not data.*)")
        self.source_step = sinfo["step"]
        self.fixed_G = self.source.nets[self.source.sampler_net].eval().requires_grad_(False)
        self.nets["E"] = registry.get("net", cfg.model.encoder)(cfg, shape, data)
        self.real = None if data is None else data.x[:256]  # the preview's real images (the data's first ones)

    @property
    def G(self) -> nn.Module:
        return self.fixed_G

    def fixed_on(self, device) -> nn.Module:
        """The fixed G on `device` (it stays outside `nets`, so the loop does not place it)."""
        if next(self.fixed_G.parameters()).device != torch.device(device):
            self.fixed_G.to(device)
        return self.fixed_G

    # ---------------------------------------------------------------- the contract
    def optimizers(self) -> dict[str, OptGroup]:
        o = self.cfg.optim
        return {"E": OptGroup(make_optimizer(o, self.nets["E"].parameters(), o.lr_d), o.lr_d, ("E",))}

    def phases(self) -> list[Phase]:
        return [Phase(("E",))]

    def losses(self, phase: str, batch: dict[str, torch.Tensor]) -> dict[str, Losses]:
        n = batch["x"].shape[0]
        z = self.rank_slice(lambda k, gen: self.sample_z(k, batch["x"].device, generator=gen), n)
        with torch.no_grad():
            x = self.fixed_on(z.device)(z)
        err = F.mse_loss(self.nets["E"](x).float(), z)
        return {"E": Losses({"latent": err}, {"z rmse": err.detach().sqrt()})}

    def preview_inputs(self, n: int, seed: int, device) -> dict[str, torch.Tensor]:
        from ..data import to_float

        if self.real is None:
            raise UserError("recipe 'encoder' previews real images: it needs its data")
        m = max(1, n // 2)
        return {"x": to_float(self.real[:m], self.cfg.data.range).to(device)}

    def preview(self, fixed, nets) -> tuple[torch.Tensor, int]:
        """Rows of real images, each followed by the row of their reconstructions G(E(x))."""
        from ..data import to_uint8

        x = fixed["x"]
        rec = self.fixed_on(x.device)(nets["E"](x))
        g = self.cfg.train.sample_grid
        rows = max(1, len(x) // g)
        x, rec = x[: rows * g].unflatten(0, (rows, g)), rec[: rows * g].unflatten(0, (rows, g))
        both = torch.stack([x, rec], 1).flatten(0, 2)  # real row, its reconstructions, next real row...
        return to_uint8(both, self.cfg.data.range), g

    def state_dict(self) -> dict:
        return {"source_step": self.source_step}

    def load_state_dict(self, state: dict) -> None:
        if "source_step" in state and int(state["source_step"]) != self.source_step:
            raise UserError(f"model.from_run {self.cfg.model.from_run} is now at step {self.source_step}, but this "
                            f"encoder was trained for its step {int(state['source_step'])}: its G has changed "
                            "(train a new encoder for it)")

    # ---------------------------------------------------------------- noise, sampling, inference
    def sample_z(self, n: int, device="cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        return self.source.sample_z(n, device, generator)

    def sample_labels(self, n: int, device="cpu", generator: torch.Generator | None = None):
        return None

    def generate(self, z: torch.Tensor, labels=None, G: nn.Module | None = None) -> torch.Tensor:
        return (self.fixed_on(z.device) if G is None else G)(z)

    def encode(self, x: torch.Tensor, E: nn.Module | None = None) -> torch.Tensor:
        """Images in the nets' range (B, C, H, W) -> z (B, z_dim)."""
        return (E or self.nets["E"])(x)
