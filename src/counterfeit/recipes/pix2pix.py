"""Pix2Pix (Isola et al. 2017): a conditional GAN on aligned pairs, G a U-Net, D a PatchGAN that sees (a, b).

    D minimises  0.5 [BCE(D(a, b), 1) + BCE(D(a, G(a)), 0)]             (a PatchGAN: the mean over its logit grid)
    G minimises  BCE(D(a, G(a)), 1) + lambda |G(a) - b|_1                (lambda = loss.l1_weight, 100)
One step is the authors' optimize_parameters: G(a) once, D's update, then G's update against the updated D. There is
no noise input: dropout in the U-Net's decoder is G's only randomness, as in the paper. loss.adv_weight=0 leaves
out D (the paper's "L1" row of Table 1), loss.l1_weight=0 the L1 term ("cGAN"). Adam 2e-4, betas (0.5, 0.999); the
lr is constant, then falls linearly to 0 (optim.linear_decay_start).
"""

from __future__ import annotations

import torch

from ..errors import UserError
from ..registry import register
from .base import Losses, Phase
from .translation import Translation, d_adv, g_adv, l1


@register("recipe", "pix2pix")
class Pix2Pix(Translation):
    sampler_net = "G"

    def __init__(self, cfg, shape, data=None):
        super().__init__(cfg, shape, data)
        lc = cfg.loss
        if data is not None and not data.paired:
            raise UserError(f"recipe 'pix2pix' learns from aligned pairs and '{cfg.data.name}' is unpaired; use "
                            "cyclegan, or a paired set (edges2fashion, colorize, a folder of AB images)")
        if lc.adv_weight <= 0 and lc.l1_weight <= 0:
            raise UserError("pix2pix with loss.adv_weight=0 and loss.l1_weight=0 has nothing to minimise")
        self.use_gan = lc.adv_weight > 0
        sa, sb = self.shape
        self.nets["G"] = self.build("G", sa, sb[0])
        if self.use_gan:  # conditional D: input and output side by side along channels
            self.nets["D"] = self.build("D", (sa[0] + sb[0], *sb[1:]), 1)

    def optimizers(self):
        o = self.cfg.optim
        groups = {"G": self.adam(("G",), o.lr_g)}
        if self.use_gan:
            groups["D"] = self.adam(("D",), o.lr_d)
        return groups

    def phases(self):
        if not self.use_gan:  # the L1-only model: a regression, no D
            return [Phase(("G",))]
        return [Phase(("D",)), Phase(("G",), data=False, freeze=("D",))]

    def losses(self, phase, batch):
        if phase == "D":
            a, b = self.domains(batch)
            fake = self.nets["G"](a)  # kept, with G's graph, for the G phase of this step
            self.keep(a, b, fake)
            D = self.nets["D"]
            real_out, fake_out = D(torch.cat([a, b], 1)).float(), D(torch.cat([a, fake.detach()], 1)).float()
            return {"D": Losses({"adv": d_adv(self.mode, real_out, fake_out)}, self._stats(real_out, fake_out))}
        if phase == "G":
            kept = self.take()
            if kept is None:
                a, b = self.domains(batch)
                kept = (a, b, self.nets["G"](a))
            a, b, fake = kept
            lc, terms = self.cfg.loss, {}
            if self.use_gan:
                terms["adv"] = lc.adv_weight * g_adv(self.mode, self.nets["D"](torch.cat([a, fake], 1)).float())
            if lc.l1_weight > 0:
                terms["l1"] = lc.l1_weight * l1(fake, b)
            return {"G": Losses(terms)}
        raise ValueError(f"unknown phase {phase}")

    def translate(self, x, direction="AtoB", nets=None):
        if direction != "AtoB":
            raise UserError("a pix2pix run learned one direction (AtoB; train with data.direction=BtoA for the other)")
        return (nets or self.nets)["G"](x)

    def generator(self, direction):
        return self.nets["G"]

    def preview_rows(self, a, b, nets):
        return [a, nets["G"](a), b]  # input | output | target
