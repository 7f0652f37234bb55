"""CycleGAN (Zhu et al. 2017): A -> B and B -> A from unpaired sets, held together by cycle consistency.

Nets: G_AB, G_BA (ResNet generators), D_A judging domain A, D_B judging domain B (PatchGANs). G's step (D frozen):
    adv     MSE(D_B(G_AB(a)), 1) + MSE(D_A(G_BA(b)), 1)                       (loss.gan_mode lsgan)
    cycle   lambda |G_BA(G_AB(a)) - a|_1 + lambda |G_AB(G_BA(b)) - b|_1       (lambda = loss.cycle_weight, 10)
    idt     lambda_idt lambda (|G_AB(b) - b|_1 + |G_BA(a) - a|_1)            (lambda_idt = loss.identity_weight, 0.5;
                                                                               needs A and B of one channel count)
then D's step on the same fakes, each drawn through its image pool of 50 past fakes:
    D_A: 0.5 [MSE(D_A(a), 1) + MSE(D_A(pool_A(G_BA(b))), 0)],   D_B likewise
One Adam over both generators, one over both discriminators, as the authors' code. The pools are recipe state and
travel in the checkpoint, so a resumed run is bit-exact.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from ..registry import register
from .base import Losses, Phase
from .pool import ImagePool
from .translation import Translation, d_adv, g_adv, l1


@register("recipe", "cyclegan")
class CycleGAN(Translation):
    sampler_net = "G_AB"
    directions = ("AtoB", "BtoA")

    def __init__(self, cfg, shape, data=None):
        super().__init__(cfg, shape, data)
        sa, sb = self.shape
        lc = cfg.loss
        if lc.identity_weight > 0 and sa[0] != sb[0]:
            raise UserError(f"the identity term feeds B images to G_AB, which takes A's {sa[0]} channels, not B's "
                            f"{sb[0]}: set loss.identity_weight=0")
        self.nets["G_AB"] = self.build("G", sa, sb[0])
        self.nets["G_BA"] = self.build("G", sb, sa[0])
        self.nets["D_A"] = self.build("D", sa, 1)
        self.nets["D_B"] = self.build("D", sb, 1)
        self.pool_a, self.pool_b = ImagePool(lc.pool_size), ImagePool(lc.pool_size)

    def optimizers(self):
        o = self.cfg.optim
        return {"G": self.adam(("G_AB", "G_BA"), o.lr_g), "D": self.adam(("D_A", "D_B"), o.lr_d)}

    def phases(self):
        return [Phase(("G",), freeze=("D_A", "D_B")), Phase(("D",), data=False)]

    def g_terms(self, a, b):
        """G's named terms and the fakes they were computed on."""
        n, lc = self.nets, self.cfg.loss
        fake_b, fake_a = n["G_AB"](a), n["G_BA"](b)
        rec_a, rec_b = n["G_BA"](fake_b), n["G_AB"](fake_a)
        terms = {"adv_AB": lc.adv_weight * g_adv(self.mode, n["D_B"](fake_b).float()),
                 "adv_BA": lc.adv_weight * g_adv(self.mode, n["D_A"](fake_a).float()),
                 "cycle_A": lc.cycle_weight * l1(rec_a, a), "cycle_B": lc.cycle_weight * l1(rec_b, b)}
        if lc.identity_weight > 0:
            w = lc.identity_weight * lc.cycle_weight
            terms["idt_A"] = w * l1(n["G_AB"](b), b)  # G_AB should leave a B image as it is
            terms["idt_B"] = w * l1(n["G_BA"](a), a)
        return terms, fake_a, fake_b

    def losses(self, phase, batch):
        if phase == "G":
            a, b = self.domains(batch)
            terms, fake_a, fake_b = self.g_terms(a, b)
            self.keep(a, b, fake_a.detach(), fake_b.detach())
            return {"G": Losses(terms)}
        if phase == "D":
            kept = self.take()
            if kept is None:
                a, b = self.domains(batch)
                with torch.no_grad():
                    kept = (a, b, self.nets["G_BA"](b), self.nets["G_AB"](a))
            a, b, fake_a, fake_b = kept
            fa, fb = self.pool_a.query(fake_a), self.pool_b.query(fake_b)
            n = self.nets
            ra, rfa = n["D_A"](a).float(), n["D_A"](fa).float()
            rb, rfb = n["D_B"](b).float(), n["D_B"](fb).float()
            return {"D": Losses({"adv_A": d_adv(self.mode, ra, rfa), "adv_B": d_adv(self.mode, rb, rfb)},
                                {**self._stats(ra, rfa, "_A"), **self._stats(rb, rfb, "_B")})}
        raise ValueError(f"unknown phase {phase}")

    def translate(self, x, direction="AtoB", nets=None):
        nets = nets or self.nets
        return nets["G_AB" if direction == "AtoB" else "G_BA"](x)

    def generator(self, direction):
        return self.nets["G_AB" if direction == "AtoB" else "G_BA"]

    def preview_rows(self, a, b, nets):
        fb, fa = nets["G_AB"](a), nets["G_BA"](b)
        return [a, fb, nets["G_BA"](fb), b, fa, nets["G_AB"](fa)]  # a | G_AB(a) | G_BA(G_AB(a)) | b | ...

    def preview(self, fixed, nets):
        # one example per row here: the six columns already show both directions
        cols = self.preview_columns(fixed, nets)
        n = max(1, min(len(c) for c in cols) // 2)  # at least the one example a tiny test split holds
        return torch.stack([cols[j][i] for i in range(n) for j in range(6)]), 6

    def state_dict(self):
        return {"pool_A": self.pool_a.state_dict(), "pool_B": self.pool_b.state_dict()}

    def load_state_dict(self, state):
        if state:
            device = next(self.nets["G_AB"].parameters()).device
            self.pool_a.load_state_dict(state["pool_A"], device)
            self.pool_b.load_state_dict(state["pool_B"], device)
