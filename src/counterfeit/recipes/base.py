"""The recipe contract, and the machinery every noise-to-image GAN shares.

A recipe declares
  nets         named networks, e.g. {"G": ..., "D": ...} or {"G_AB", "G_BA", "D_A", "D_B"};
  optimizers() its optimizer groups over them, {group: OptGroup}; a group's name is also its log prefix (loss/D/...);
  phases()     the parts of one training step, e.g. [Phase(("D",), repeat=k), Phase(("G",), data=False, freeze=("D",))];
  losses()     for a phase and a batch that is a dict of tensors ({"x", "y"}, {"A", "B"}), {group: Losses}: the
               named loss terms each group minimises;
  preview      how to draw the fixed preview grid (preview_inputs / preview);
  state_dict() its own state beyond the networks (an image pool, say); the loop checkpoints it.
The loop (train.py) sums each group's terms, runs backward(), steps that group's optimizer and logs every term. A
recipe holds no loop, no argparse, no file writes and never calls .step().

`NoiseGAN` implements the shared machinery of the noise-to-image family once: noise, labels for conditional models,
instance noise, packing, the gradient penalty, R1 and ACGAN's class terms. A variant says what its adversarial
loss is (`d_adv`, `g_adv`) and, if it must, a projection after D's step, so two variants differ in exactly what
their files say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .. import losses as L
from .. import nets as _nets  # noqa: F401  (registers the networks)
from .. import registry
from ..errors import UserError
from ..nets.cond import CondDiscriminator, CondGenerator


@dataclass
class Losses:
    terms: dict[str, torch.Tensor]  # named scalar terms; the loop minimises their sum
    # things to log, e.g. mean D(x), D(G(z)): 0-dim tensors (or floats), read back by the loop once per metrics row
    stats: dict[str, torch.Tensor | float] = field(default_factory=dict)


@dataclass(frozen=True)
class Phase:
    """One part of a training step.

    groups  the optimizer groups it steps: one, or several for a joint update, where every group takes its gradient
            from its own losses over one shared forward pass (the 2014 code's simultaneous update);
    repeat  how many times it runs per step (k = n_dis for D);
    data    True: a fresh minibatch each time; False: the step's latest batch again (a G step that needs no data);
    freeze  networks held fixed (requires_grad off) while it runs: G's step needs gradients through D, not for D.
    """

    groups: tuple[str, ...]
    repeat: int = 1
    data: bool = True
    freeze: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return "+".join(self.groups)


@dataclass
class OptGroup:
    optimizer: torch.optim.Optimizer
    lr: float  # the base learning rate that the schedules scale
    nets: tuple[str, ...]  # the networks whose parameters it updates


class Recipe:
    """Base of every recipe: named networks, optimizer groups, phases, losses, preview and own state."""

    ema_nets: tuple[str, ...] = ()  # networks of which train.ema_decay keeps a moving average (sampling uses it)
    # train.precision=auto picks bf16 (where native) only for recipes whose training in bf16 was checked against fp32
    bf16_checked: bool = False
    sampler_net: str = "G"  # the network that `sample` / `translate` run

    def __init__(self, cfg, shape, data=None):
        self.cfg = cfg
        self.shape = tuple(shape)
        self.step = 0  # set by the loop before each step (annealing schedules read it)
        self.nets: dict[str, nn.Module] = {}

    def optimizers(self) -> dict[str, OptGroup]:
        raise NotImplementedError

    def phases(self) -> list[Phase]:
        raise NotImplementedError

    def losses(self, phase: str, batch: dict[str, torch.Tensor]) -> dict[str, Losses]:
        raise NotImplementedError

    def after_step(self, phase: str) -> None:
        """Hook after a phase's optimizers stepped: projections such as WGAN's weight clipping."""

    def preview_inputs(self, n: int, seed: int, device) -> dict[str, torch.Tensor]:
        """The fixed inputs of the preview grid, drawn once per run (and kept in its checkpoints)."""
        raise NotImplementedError

    def preview(self, fixed: dict[str, torch.Tensor], nets: dict[str, nn.Module]) -> tuple[torch.Tensor, int]:
        """The preview grid from the fixed inputs: uint8 images (N, C, H, W) and the images per row."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def bf16_auto(self) -> tuple[bool, str]:
        """Whether precision=auto may train this recipe in bf16, and why not when it may not."""
        return self.bf16_checked, f"recipe '{self.cfg.model.recipe}' is not checked in bf16"

    # one process of `world` under torchrun: draws that belong to the global batch (G's noise, fake labels) come from
    # `shared`, a generator every rank holds in the same state, at the global batch's size, and each rank keeps its
    # slice; so N processes draw what one process with the same global batch draws. Per-element randomness (dropout,
    # instance noise, GP interpolation weights, crops) uses the rank's own stream (train.py seeds it by seed and rank).
    rank, world, shared = 0, 1, None

    def distribute(self, rank: int, world: int, shared: torch.Generator) -> None:
        self.rank, self.world, self.shared = rank, world, shared

    def rank_slice(self, draw, n: int) -> torch.Tensor:
        """draw(count, generator) for this rank's n rows of the global batch (the plain draw in one process)."""
        if self.world == 1:
            return draw(n, None)
        return draw(n * self.world, self.shared)[self.rank * n:(self.rank + 1) * n]

    def group_params(self, group: OptGroup) -> list[nn.Parameter]:
        return [p for n in group.nets for p in self.nets[n].parameters() if p.requires_grad]


def _net_property(name: str):
    return property(lambda self: self.nets[name], lambda self, m: self.nets.__setitem__(name, m))


class NoiseGAN(Recipe):
    """G maps noise (and a label, when conditional) to samples; D scores samples. Groups "G" and "D"."""

    supports_joint: bool = True  # can compute D's and G's losses from one forward pass (simultaneous update)
    bf16_checked = True  # for convolutional nets: see bf16_auto
    outputs_probability: bool = False  # D's output is a logit of P(real): log sigmoid means as D(x), D(G(z))
    ema_nets = ("G",)
    G = _net_property("G")
    D = _net_property("D")

    def __init__(self, cfg, shape: tuple[int, int, int], data=None):
        if shape and isinstance(shape[0], (tuple, list)):
            raise UserError(f"recipe '{cfg.model.recipe}' draws images from noise; '{cfg.data.name}' is a translation "
                            "set of two domains (train it with pix2pix or cyclegan)")
        super().__init__(cfg, shape, data)
        self.n_dis = cfg.train.n_dis
        self.num_classes = cfg.model.num_classes
        self.conditional = self.num_classes > 0
        if self.conditional and data is not None and data.y is None:
            raise UserError(f"recipe '{cfg.model.recipe}' is conditional but dataset '{data.name}' has no labels")
        if self.conditional and data is not None and len(data.y):
            lo, hi = int(data.y.min()), int(data.y.max())
            if lo < 0 or hi >= self.num_classes:  # an embedding lookup would fail mid-step, or learn a wrong class
                raise UserError(f"dataset '{data.name}' has labels {lo}..{hi}, but model.num_classes is "
                                f"{self.num_classes} (labels must be 0..{self.num_classes - 1})")
        self.aux = self.conditional and cfg.model.d_cond == "acgan"
        self.pack = cfg.model.pack
        if self.pack < 1 or (self.pack > 1 and self.conditional):
            raise UserError("model.pack must be >= 1, and packing (PacGAN) is for unconditional recipes")
        if self.pack > 1 and cfg.train.batch_size % self.pack:
            raise UserError(f"train.batch_size {cfg.train.batch_size} is not a multiple of model.pack {self.pack}")
        d_shape = (shape[0] * self.pack, *shape[1:])  # PacGAN: m samples side by side along features/channels
        self.nets["G"] = registry.get("net", cfg.model.generator)(cfg, shape, data)
        self.nets["D"] = registry.get("net", cfg.model.discriminator)(cfg, d_shape, data)
        if self.conditional and not (isinstance(self.G, CondGenerator) and isinstance(self.D, CondDiscriminator)):
            raise UserError(f"recipe '{cfg.model.recipe}' is conditional, but networks '{cfg.model.generator}' / "
                            f"'{cfg.model.discriminator}' do not take labels (conditional ones: the convolutional "
                            f"dcgan-g/d, tf-dcgan-g/d, sngan-g/d, resnet-g/d)")
        if any(getattr(cfg.model, k).startswith("py:") for k in ("generator", "discriminator")):
            check_own_nets(self, tuple(shape))
        # With BatchNorm in D, real and fake go through D in separate passes (their own batch statistics),
        # as in Radford et al.'s code; otherwise one concatenated pass is cheaper and equivalent (see _d_pass).
        self.concat_real_fake = not any(isinstance(m, _BatchNorm) for m in self.D.modules())
        self.joint = cfg.train.simultaneous and cfg.train.n_dis == 1
        if self.joint and not self.supports_joint:
            raise UserError(f"recipe '{cfg.model.recipe}' has no simultaneous update; set train.simultaneous=false")
        # In a joint step G's loss flows back through D into the fake half only, yet after one concatenated pass
        # every layer's input gradient covers the real half too: for a convolutional D separate passes are faster,
        # for an MLP D they are not (split_d in bench/results/speed-avx512bf16.json), so MLP Ds keep one pass
        self.split_joint = self.joint and any(isinstance(m, nn.modules.conv._ConvNd) for m in self.D.modules())

    def bf16_auto(self) -> tuple[bool, str]:
        # bf16 pays on convolutions and trains as fp32 does; MLPs gain little, and in bf16 the 2014 GAN's D wins
        # outright where fp32 trains; 2D toy points are finer than bf16's 8-bit mantissa (bench/results/speed.json).
        # So auto keeps MLP nets in fp32.
        if not self.bf16_checked:
            return super().bf16_auto()
        conv = any(isinstance(m, nn.modules.conv._ConvNd) for n in ("G", "D") for m in self.nets[n].modules())
        return conv, "MLP nets train in fp32 (in bf16 the 2014 GAN collapsed)"

    # ---------------------------------------------------------------- the contract
    def optimizers(self) -> dict[str, OptGroup]:
        o = self.cfg.optim
        return {"G": OptGroup(make_optimizer(o, self.G.parameters(), o.lr_g), o.lr_g, ("G",)),
                "D": OptGroup(make_optimizer(o, self.D.parameters(), o.lr_d), o.lr_d, ("D",))}

    def phases(self) -> list[Phase]:
        if self.joint:  # the 2014 code: one minibatch, one forward pass, both gradients from it
            return [Phase(("D", "G"))]
        # Algorithm 1: k D steps on fresh minibatches, then one G step on fresh noise
        return [Phase(("D",), repeat=self.n_dis), Phase(("G",), data=False, freeze=("D",))]

    def losses(self, phase: str, batch: dict[str, torch.Tensor]) -> dict[str, Losses]:
        real, labels = batch["x"], batch.get("y")
        if phase == "D":
            return {"D": self.d_losses(real, labels)}
        if phase == "G":
            return {"G": self.g_losses(real.shape[0], labels)}
        if phase == "D+G":
            d, g = self.joint_losses(real, labels)
            return {"D": d, "G": g}
        raise ValueError(f"unknown phase {phase}")

    def after_step(self, phase: str) -> None:
        if "D" in phase.split("+"):
            self.after_d_step()

    def preview_inputs(self, n: int, seed: int, device) -> dict[str, torch.Tensor]:
        fixed = {"z": self.sample_z(n, generator=torch.Generator().manual_seed(seed + 777)).to(device)}
        if self.conditional:  # row r of the grid shows class r (mod the number of classes)
            fixed["y"] = (torch.arange(n) // self.cfg.train.sample_grid % self.num_classes).to(device)
        return fixed

    def preview(self, fixed, nets) -> tuple[torch.Tensor, int]:
        from ..data import to_uint8

        return to_uint8(self.generate(fixed["z"], fixed.get("y"), G=nets["G"]), self.cfg.data.range), \
            self.cfg.train.sample_grid

    # ---------------------------------------------------------------- noise, labels and sampling
    def sample_z(self, n: int, device="cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, z_dim) noise; 'uniform' is U[-sqrt(3), sqrt(3)] (unit variance), as in the 2014 code."""
        return draw_z(self.cfg.model.noise, n, self.cfg.model.z_dim, device, generator)

    def sample_labels(self, n: int, device="cpu", generator: torch.Generator | None = None) -> torch.Tensor | None:
        if not self.conditional:
            return None
        return torch.randint(self.num_classes, (n,), device=device, generator=generator)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, G: nn.Module | None = None) -> torch.Tensor:
        G = G or self.G
        if self.conditional:
            if labels is None:
                labels = self.sample_labels(z.shape[0], z.device)
            return G(z, labels)
        return G(z)

    # ---------------------------------------------------------------- what a variant defines
    def d_adv(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_adv(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def after_d_step(self) -> None:
        """Hook for projections after D's update (e.g. WGAN weight clipping)."""

    # ---------------------------------------------------------------- shared machinery
    def _critic(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.pack > 1:  # (B, S0, ...) -> (B/m, m*S0, ...): D judges m samples at once; one output per pack
            x = x.reshape(x.shape[0] // self.pack, self.pack * x.shape[1], *x.shape[2:])
        out = self.D(x, y) if self.conditional else self.D(x)
        out, aux = out if isinstance(out, tuple) else (out, None)
        # logits back to fp32 under bf16 autocast, so the losses and their gradients are computed in full precision
        return out.float(), None if aux is None else aux.float()  # (B,) logits, (B, classes) or None

    def _noisy(self, x: torch.Tensor) -> torch.Tensor:
        """Instance noise (Sønderby et al.; Arjovsky & Bottou): N(0, s^2) on D's inputs, s annealed to 0."""
        s0, n = self.cfg.loss.instance_noise, self.cfg.loss.instance_noise_steps
        s = s0 * max(0.0, 1.0 - self.step / n) if n else s0
        return x + s * torch.randn_like(x) if s > 0 else x

    def _d_pass(self, real, y, fake, yf, concat: bool = True):
        real, fake = self._noisy(real), self._noisy(fake)
        # An MLP D keeps one concatenated pass also in a joint step: separate passes there (another order of dropout
        # draws) trained the quickstart worse and were no faster (bench/results/speed.json); convolutional Ds split
        # in a joint step (split_joint)
        if self.concat_real_fake and concat:
            b = real.shape[0] // self.pack  # D gives one output per pack of m samples
            out, aux = self._critic(torch.cat([real, fake]), None if y is None else torch.cat([y, yf]))
            split = lambda t: (None, None) if t is None else (t[:b], t[b:])  # noqa: E731
            (lr, lf), (ar, af) = (out[:b], out[b:]), split(aux)
        else:
            (lr, ar), (lf, af) = self._critic(real, y), self._critic(fake, yf)
        return lr, ar, lf, af

    def _d_losses(self, real, y, fake, yf, concat: bool = True) -> tuple[Losses, torch.Tensor, torch.Tensor | None]:
        lr, ar, lf, af = self._d_pass(real, y, fake, yf, concat)
        terms = {"adv": self.d_adv(lr, lf)}
        lc = self.cfg.loss
        if self.aux:
            # ACGAN: D classifies real images, and generated ones unless loss.aux_fake=false; -log P(C = c | x)
            terms["cls"] = lc.aux_weight * (F.cross_entropy(ar, y) + (F.cross_entropy(af, yf) if lc.aux_fake else 0.0))
        if lc.gp_weight > 0:
            terms["gp"] = lc.gp_weight * L.gradient_penalty(lambda x: self._critic(x, y)[0], real, fake)
        if lc.r1_gamma > 0:
            terms["r1"] = 0.5 * lc.r1_gamma * L.r1_penalty(lambda x: self._critic(x, y)[0], real)
        lr_, lf_ = lr.detach(), lf.detach()
        if self.outputs_probability:
            p_real, p_fake = L.d_real_fake_prob(lr_, lf_)
            stats = {"D(x)": p_real, "D(G(z))": p_fake}
        else:
            stats = {"critic(x)": lr_.mean(), "critic(G(z))": lf_.mean()}
        if self.aux:
            stats["D acc real"] = (ar.detach().argmax(1) == y).float().mean()
        return Losses(terms, stats), lf, af

    def _g_terms(self, lf, af, yf) -> Losses:
        terms = {"adv": self.g_adv(lf)}
        if self.aux:
            terms["cls"] = self.cfg.loss.aux_weight * F.cross_entropy(af, yf)
        return Losses(terms)

    def train_noise(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This rank's (z, fake labels) for a training step: n rows of the global batch's draw."""
        yf = self.rank_slice(lambda k, gen: self.sample_labels(k, device, generator=gen), n) if self.conditional else None
        return self.rank_slice(lambda k, gen: self.sample_z(k, device, generator=gen), n), yf

    def d_losses(self, real: torch.Tensor, labels: torch.Tensor | None) -> Losses:
        z, yf = self.train_noise(real.shape[0], real.device)
        with torch.no_grad():
            fake = self.generate(z, yf)  # (B, C, H, W)
        return self._d_losses(real, labels if self.conditional else None, fake, yf)[0]

    def g_losses(self, n: int, labels: torch.Tensor | None) -> Losses:
        z, yf = self.train_noise(n, next(self.G.parameters()).device)
        fake = self._noisy(self.generate(z, yf))
        lf, af = self._critic(fake, yf)
        return self._g_terms(lf, af, yf)

    def joint_losses(self, real: torch.Tensor, labels: torch.Tensor | None) -> tuple[Losses, Losses]:
        """D's and G's losses from one minibatch and one forward pass (the 2014 code's simultaneous update)."""
        z, yf = self.train_noise(real.shape[0], real.device)
        fake = self.generate(z, yf)
        d, lf, af = self._d_losses(real, labels if self.conditional else None, fake, yf, concat=not self.split_joint)
        return d, self._g_terms(lf, af, yf)


class UnconditionalG:
    """Noise and sampling of a recipe whose G takes z alone (nets["G"]): what `sample`, `evaluate` and the API call."""

    def sample_z(self, n: int, device="cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        return draw_z(self.cfg.model.noise, n, self.cfg.model.z_dim, device, generator)

    def sample_labels(self, n: int, device="cpu", generator: torch.Generator | None = None):
        return None

    def generate(self, z: torch.Tensor, labels=None, G: nn.Module | None = None) -> torch.Tensor:
        return (G or self.nets["G"])(z)


def draw_z(noise: str, n: int, z_dim: int, device="cpu", generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, z_dim) noise of model.noise's kind."""
    if noise == "normal":
        return torch.randn(n, z_dim, generator=generator, device=device)
    u = torch.rand(n, z_dim, generator=generator, device=device)
    if noise == "uniform01":
        return u
    return (u * 2.0 - 1.0) * (math.sqrt(3.0) if noise == "uniform" else 1.0)


@torch.no_grad()
def check_own_nets(recipe, shape: tuple) -> None:
    """A caller's own G and D against the contract, on two samples in eval mode (no statistics updated, no draw
    from the training's random stream): G (B, z_dim) -> (B, *shape), D (B, *shape) -> (B,) logits."""
    G, D = recipe.G, recipe.D
    was = G.training, D.training
    G.eval(), D.eval()
    z = recipe.sample_z(2, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(2, dtype=torch.long) if recipe.conditional else None
    try:
        x = recipe.generate(z, y)
        if tuple(x.shape) != (2, *shape):
            raise UserError(f"G makes {tuple(x.shape[1:])} from z of size {z.shape[1]}; the data are {shape} "
                            "(G: (B, z_dim) -> (B, C, H, W) in data.range)")
        if recipe.pack == 1:
            out = D(x, y) if recipe.conditional else D(x)
            out = out[0] if isinstance(out, tuple) else out
            if tuple(out.shape) != (2,):
                raise UserError(f"D gives {tuple(out.shape)} for 2 images; it must give (B,) logits (squeeze a "
                                "(B, 1) output; no sigmoid: the losses take logits)")
    except (RuntimeError, TypeError, ValueError) as e:
        raise UserError(f"the networks passed as nets= fail on a batch of 2: {type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]}") from None
    finally:
        G.train(was[0]), D.train(was[1])


def make_optimizer(o, params, lr: float) -> torch.optim.Optimizer:
    # torch's fused kernels (CPU and CUDA): one pass over each parameter instead of one per term. SGD's is bit-identical
    # to the per-tensor loop; Adam's rounds differently in the last bit; both are faster (bench/results/speed.json)
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=o.momentum, weight_decay=o.weight_decay, fused=True)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay,
                                fused=True)
    if o.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=o.weight_decay, foreach=True)
    raise UserError(f"unknown optimizer '{o.name}' (known: sgd, adam, rmsprop)")


def build_recipe(cfg, shape, data=None) -> Recipe:
    """The recipe cfg names, with its networks built for images of `shape` (after the plugins cfg imports)."""
    from .. import recipes  # noqa: F401  (importing the package registers every recipe)

    registry.import_plugins(cfg.imports)
    return registry.get("recipe", cfg.model.recipe)(cfg, shape, data)
