"""The machinery image-to-image recipes share (Pix2Pix, CycleGAN): domains, augmentation, losses, preview.

Data are two domains A and B (data/translation.py): a batch is {"A": (B, Ca, H, W), "B": (B, Cb, H, W)} in [-1, 1].
`data.direction=BtoA` swaps them here, so a recipe always learns its "A" -> "B". The adversarial terms take logits
(PatchGAN's grid of them) and are the authors' GANLoss:
    bce    D: 0.5 (BCE(D(real), 1) + BCE(D(fake), 0)) = 0.5 losses.d_bce;   G: BCE(D(G(a)), 1) = losses.g_nonsat
    lsgan  D: 0.5 (MSE(D(real), 1) + MSE(D(fake), 0)) = losses.d_least_squares;   G: MSE(D(G(a)), 1)
A step's fakes are computed once and shared between its D and G phases, as in the authors' optimize_parameters:
the first phase keeps them (with G's graph) for the phase after it, which draws no new batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import losses as L
from .. import registry
from ..data import to_uint8
from ..data.translation import center_crop, jitter
from ..errors import UserError
from .base import Losses, OptGroup, Recipe, make_optimizer

TRANSLATION_DATA = ("edges2fashion, edges2fashion-unpaired, colorize, or a folder with trainA/ trainB/ (unpaired) "
                    "or train/ of side-by-side AB images (aligned)")


def d_adv(mode: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if mode == "bce":
        return 0.5 * L.d_bce(real, fake)
    return L.d_least_squares(real, fake)  # 0.5 MSE(real, 1) + 0.5 MSE(fake, 0)


def g_adv(mode: str, fake: torch.Tensor) -> torch.Tensor:
    if mode == "bce":
        return L.g_nonsat(fake)
    return 2.0 * L.g_least_squares(fake)  # MSE(D(G(a)), 1), unhalved, as the authors weigh it against lambda


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(x.float(), y.float())  # in fp32 under bf16 autocast, like the logits


class Translation(Recipe):
    """Base of the image-to-image recipes: shapes of the two domains, batches, the preview and `translate`."""

    ema_nets = ()
    directions: tuple[str, ...] = ("AtoB",)  # what `translate --direction` can ask of this recipe

    def __init__(self, cfg, shape, data=None):
        super().__init__(cfg, (), data)
        name = cfg.model.recipe
        if len(shape) != 2 or not all(isinstance(s, (tuple, list)) and len(s) == 3 for s in shape):
            raise UserError(f"recipe '{name}' translates images between two domains; dataset '{cfg.data.name}' is "
                            f"not a translation set ({TRANSLATION_DATA})")
        if cfg.data.range != "pm1":
            raise UserError(f"recipe '{name}' works on pixels in [-1, 1] (tanh generators): set data.range=pm1")
        if cfg.train.eval_every > 0:
            raise UserError(f"train.eval_every: a {name} run is scored on its test split after training "
                            "(counterfeit evaluate RUN), not during it; set train.eval_every=0")
        if cfg.train.ema_decay > 0:
            raise UserError(f"train.ema_decay: recipe '{name}' keeps no moving average of its generators; "
                            "set train.ema_decay=0")
        sa, sb = (tuple(int(v) for v in s) for s in shape)
        self.swap = cfg.data.direction == "BtoA"
        if self.swap:
            sa, sb = sb, sa
        self.crop = cfg.data.crop_size
        if self.crop:
            if self.crop > min(sa[1:]):
                raise UserError(f"data.crop_size {self.crop} is larger than the images ({sa[1]}x{sa[2]})")
            sa, sb = (sa[0], self.crop, self.crop), (sb[0], self.crop, self.crop)
        self.shape = (sa, sb)  # what the nets see: A's and B's (C, H, W) after the direction and the crop
        self.shape_a, self.shape_b = sa, sb
        self.paired = None if data is None else data.paired
        self.mode = cfg.loss.gan_mode
        self._kept = None  # the step's batch and fakes, from its first phase to the next

    # ---------------------------------------------------------------- helpers for the variants
    def build(self, role: str, in_shape, out_ch: int) -> nn.Module:
        m = self.cfg.model
        return registry.get("translation-net", m.generator if role == "G" else m.discriminator)(m, in_shape, out_ch)

    def adam(self, names: tuple[str, ...], lr: float) -> OptGroup:
        params = [p for n in names for p in self.nets[n].parameters()]  # one optimizer over several nets
        return OptGroup(make_optimizer(self.cfg.optim, params, lr), lr, names)

    def domains(self, batch: dict[str, torch.Tensor], train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch -> (a, b) as this recipe learns them: the direction applied, jittered in training (the authors'
        random crop and flip), centre-cropped otherwise."""
        if train:
            batch = jitter(batch, self.crop, self.cfg.data.flip, bool(self.paired))
        a, b = batch["A"], batch["B"]
        if not train:
            a, b = center_crop(a, self.crop), center_crop(b, self.crop)
        return (b, a) if self.swap else (a, b)

    def keep(self, *tensors) -> None:
        self._kept = tensors

    def take(self):
        kept, self._kept = self._kept, None
        return kept

    # ---------------------------------------------------------------- translate and preview
    def translate(self, x: torch.Tensor, direction: str = "AtoB", nets: dict | None = None) -> torch.Tensor:
        """Images of the source domain, float (B, C, H, W) in [-1, 1], through the generator of `direction` ("AtoB";
        CycleGAN also "BtoA"), with `nets` in place of the recipe's own where given -> (B, C', H, W) in [-1, 1].
        `counterfeit translate`, Run.translate and the metrics call it."""
        raise NotImplementedError

    def check_direction(self, direction: str) -> None:
        if direction not in self.directions:
            raise UserError(f"a {self.cfg.model.recipe} run translates {', '.join(self.directions)}, not {direction}")

    def set_net_mode(self, mode: str, seed: int = 0) -> None:
        """eval: BatchNorm running statistics, no dropout; train: batch statistics and dropout (seeded), as the
        authors' test.py without --eval."""
        if mode not in ("eval", "train"):
            raise UserError(f"--net-mode must be eval or train, not {mode}")
        for m in self.nets.values():
            m.train(mode == "train")
        torch.manual_seed(seed)

    def generator(self, direction: str) -> nn.Module:
        raise NotImplementedError

    def check_size(self, h: int, w: int, direction: str = "AtoB") -> None:
        """Refuse, in one line, images whose sides the generator cannot take (a U-Net: 2^depth; ResNet: 4)."""
        net = self.generator(direction)
        k = 2 ** len(net.downs) if hasattr(net, "downs") else 4
        if h % k or w % k:
            raise UserError(f"images are {h}x{w}; this network takes sides divisible by {k} (it was trained on "
                            f"{self.shape_a[1]}x{self.shape_a[2]}): resize or crop them")

    def in_channels(self, direction: str) -> int:
        return (self.shape_a if direction == "AtoB" else self.shape_b)[0]

    def preview_inputs(self, n: int, seed: int, device) -> dict[str, torch.Tensor]:
        """Held-out examples (the test split where there is one), evenly spaced through it, fixed for the run."""
        from ..data import to_float
        from ..data.translation import load_translation

        d = self.cfg.data
        try:
            data = load_translation(d.name, "test", d.image_size, d.channels)
        except UserError:
            data = load_translation(d.name, "train", d.image_size, d.channels)
        k = 2 * self.cfg.train.sample_grid  # two examples per row
        fixed = {}
        for key in ("A", "B"):
            x = getattr(data, key)
            idx = torch.linspace(0, len(x) - 1, min(k, len(x))).round().long()
            fixed[key] = to_float(x[idx], "pm1").to(device)
        a, b = self.domains(fixed, train=False)
        return {"A": a, "B": b}

    def preview_columns(self, fixed, nets) -> list[torch.Tensor]:
        """The preview's columns as uint8 (k, C, H, W), grayscale shown as RGB beside colour."""
        cols = [to_uint8(c.float().cpu(), "pm1") for c in self.preview_rows(fixed["A"], fixed["B"], nets)]
        if any(c.shape[1] == 3 for c in cols):
            cols = [c.repeat(1, 3 // c.shape[1], 1, 1) for c in cols]
        return cols

    def preview(self, fixed, nets) -> tuple[torch.Tensor, int]:
        cols = self.preview_columns(fixed, nets)
        per = len(cols)
        n = min(len(c) for c in cols)
        if n < 2:  # a single held-out example: one row of its own
            return torch.stack([c[0] for c in cols]), per
        # two examples side by side per row: [a | G(a) | b] [a' | G(a') | b'] ...
        order = [cols[j][i] for r in range(0, n - 1, 2) for i in (r, r + 1) for j in range(per)]
        return torch.stack(order), 2 * per

    def preview_rows(self, a, b, nets) -> list[torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> list[str]:
        """What `train --dry-run` prints about the networks."""
        from ..nets.patchgan import PatchDiscriminator

        lines = [f"A {self.shape_a} -> B {self.shape_b}"]
        for name, net in self.nets.items():
            n = sum(p.numel() for p in net.parameters())
            line = f"{name}: {type(net).__name__}, {n:,} parameters"
            if isinstance(net, PatchDiscriminator):
                h, w = (self.shape_b if name != "D_A" else self.shape_a)[1:]
                gh, gw = net.output_grid(h, w)
                rf = net.receptive_field()
                line += f", receptive field {rf}x{rf}, output grid {gh}x{gw} logits on {h}x{w} images"
            elif hasattr(net, "n_dropout"):
                line += f", {len(net.downs)} levels, {net.n_dropout} decoder blocks with dropout"
            lines.append(line)
        return lines

    def _stats(self, real: torch.Tensor, fake: torch.Tensor, tag: str = "") -> dict[str, torch.Tensor]:
        real, fake = real.detach(), fake.detach()
        if self.mode == "bce":  # mean probability D gives real and fake patches
            p_real, p_fake = L.d_real_fake_prob(real, fake)
            return {f"D{tag}(real)": p_real, f"D{tag}(fake)": p_fake}
        return {f"D{tag}(real)": real.mean(), f"D{tag}(fake)": fake.mean()}
