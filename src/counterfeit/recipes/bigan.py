"""BiGAN (Donahue et al. 2017) / ALI (Dumoulin et al. 2017): G(z) and an encoder E(x) trained jointly against a
discriminator of (x, z) pairs, which tells real pairs (x, E(x)) from generated ones (G(z), z). At the optimum
E inverts G, so E learns inference without ever seeing a (x, z) pair of the same image.

    D:       d_scale * (BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0))          (d_scale 0.5 in the authors' code)
    G and E: d_scale * (BCE(D(x, E(x)), 0) + BCE(D(G(z), z), 1))          (labels flipped: non-saturating)

The authors update D and G+E together from one batch (train.simultaneous, one forward pass); otherwise D steps
first and G+E after it on the same batch. Real and generated pairs go through D in separate passes (its BatchNorm
has statistics of its own per kind, as theirs).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import losses as L
from .. import registry
from ..errors import UserError
from .base import Losses, OptGroup, Phase, Recipe, UnconditionalG, make_optimizer


@registry.register("recipe", "bigan")
class BiGAN(UnconditionalG, Recipe):
    """Groups "D" and "GE" (one optimizer over G and E, as the authors hand E's parameters to G's optimizer)."""

    ema_nets = ("G", "E")

    def __init__(self, cfg, shape, data=None):
        if shape and isinstance(shape[0], (tuple, list)):
            raise UserError(f"recipe 'bigan' draws images from noise; '{cfg.data.name}' is a translation set")
        if cfg.model.num_classes:
            raise UserError("recipe 'bigan' is unconditional: set model.num_classes=0")
        if cfg.train.n_dis != 1:
            raise UserError("recipe 'bigan' takes one D step per G+E step: set train.n_dis=1")
        super().__init__(cfg, shape, data)
        m = cfg.model
        self.nets["G"] = registry.get("net", m.generator)(cfg, shape, data)
        self.nets["E"] = registry.get("net", "conv-e" if m.encoder == "auto" else m.encoder)(cfg, shape, data)
        self.nets["D"] = registry.get("net", m.discriminator)(cfg, shape, data)
        self.joint = cfg.train.simultaneous
        self.real = None if data is None else data.x[:256]  # the preview's real images
        self.check_nets()

    @torch.no_grad()
    def check_nets(self) -> None:
        """G, E and D against the contract on two samples in eval mode, before anything is written."""
        nets = self.nets
        was = {n: m.training for n, m in nets.items()}
        for m in nets.values():
            m.eval()
        try:
            z = self.sample_z(2, generator=torch.Generator().manual_seed(0))
            x = nets["G"](z)
            ez = nets["E"](x)
            out = nets["D"](x, z)
            if tuple(x.shape[1:]) != tuple(self.shape) or tuple(ez.shape) != tuple(z.shape) or tuple(out.shape) != (2,):
                raise UserError(f"recipe 'bigan' needs G: z -> {tuple(self.shape)}, E: x -> z "
                                f"({self.cfg.model.z_dim}), D: (x, z) -> (B,) logits; got G {tuple(x.shape[1:])}, "
                                f"E {tuple(ez.shape[1:])}, D {tuple(out.shape)}")
        except (RuntimeError, TypeError, ValueError) as e:
            raise UserError(f"recipe 'bigan': the networks fail on a batch of 2 (D must take (x, z)): "
                            f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
        finally:
            for n, m in nets.items():
                m.train(was[n])

    # ---------------------------------------------------------------- the contract
    def optimizers(self) -> dict[str, OptGroup]:
        o = self.cfg.optim
        ge = [*self.nets["G"].parameters(), *self.nets["E"].parameters()]
        return {"D": OptGroup(make_optimizer(o, self.nets["D"].parameters(), o.lr_d), o.lr_d, ("D",)),
                "GE": OptGroup(make_optimizer(o, ge, o.lr_g), o.lr_g, ("G", "E"))}

    def phases(self) -> list[Phase]:
        if self.joint:
            return [Phase(("D", "GE"))]
        return [Phase(("D",)), Phase(("GE",), data=False, freeze=("D",))]

    def pairs(self, x: torch.Tensor, grad: bool = True) -> dict[str, torch.Tensor]:
        """The step's real pair (x, E(x)) and generated pair (G(z), z); grad=False holds G and E out of the graph."""
        z = self.rank_slice(lambda k, gen: self.sample_z(k, x.device, generator=gen), x.shape[0])
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            ex, gz = self.nets["E"](x), self.nets["G"](z)
        return {"x": x, "ex": ex, "gz": gz, "z": z}

    def scores(self, p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits of the real and the generated pairs, in separate passes, back in fp32."""
        return self.nets["D"](p["x"], p["ex"]).float(), self.nets["D"](p["gz"], p["z"]).float()

    def losses(self, phase: str, batch: dict[str, torch.Tensor]) -> dict[str, Losses]:
        s = self.cfg.loss.d_scale
        lr, lf = self.scores(self.pairs(batch["x"], grad=phase != "D"))
        p_real, p_fake = L.d_real_fake_prob(lr, lf)
        out = {}
        if "D" in phase.split("+"):
            out["D"] = Losses({"adv": s * L.d_bce(lr, lf)}, {"D(x,E(x))": p_real, "D(G(z),z)": p_fake})
        if "GE" in phase.split("+"):
            out["GE"] = Losses({"adv": s * L.d_bce(lf, lr)})  # the same BCE with the labels flipped
        return out

    def preview_inputs(self, n: int, seed: int, device) -> dict[str, torch.Tensor]:
        from ..data import to_float

        fixed = {"z": self.sample_z(n, generator=torch.Generator().manual_seed(seed + 777)).to(device)}
        if self.real is not None:
            fixed["x"] = to_float(self.real[: n // 2], self.cfg.data.range).to(device)
        return fixed

    def preview(self, fixed, nets) -> tuple[torch.Tensor, int]:
        """The top half: G(z) for fixed z; the bottom half: rows of real images each followed by G(E(x))."""
        from ..data import to_uint8

        g = self.cfg.train.sample_grid
        half = (g // 2) * g
        parts = [nets["G"](fixed["z"][:half])]
        if "x" in fixed:
            rows = max(1, (len(fixed["z"]) - half) // (2 * g))
            x = fixed["x"][: rows * g]
            rec = nets["G"](nets["E"](x))
            parts.append(torch.stack([x.unflatten(0, (rows, g)), rec.unflatten(0, (rows, g))], 1).flatten(0, 2))
        return to_uint8(torch.cat(parts), self.cfg.data.range), g

    # ---------------------------------------------------------------- inference (noise and sampling: UnconditionalG)
    def encode(self, x: torch.Tensor, E: nn.Module | None = None) -> torch.Tensor:
        """Images in the nets' range (B, C, H, W) -> z (B, z_dim)."""
        return (E or self.nets["E"])(x)
