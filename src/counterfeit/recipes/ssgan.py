"""The semi-supervised GAN of Salimans et al. 2016 ("Improved Techniques for Training GANs", section 5): D is a
classifier of K classes plus "generated", trained on a few labelled and many unlabelled images; G is trained by
feature matching. With K logits l(x) and the generated class's logit fixed at 0, D(x) = Z / (Z + 1), Z = sum exp l:

    D:  CE(l(x_lab), y)  +  w * 0.5 * ( -lse(l(x)) + softplus(lse(l(x))) + softplus(lse(l(G(z)))) )
        (the labelled cross-entropy; -log D(x) on unlabelled images; -log(1 - D(G(z))) on generated ones)
    G:  mean over units of (mean_batch f(G(z)) - mean_batch f(x))^2, f = D's last hidden layer

The labelled images are data.labelled_per_class of each class, drawn once with data.labelled_seed and kept in the
run's checkpoints; each step's labelled batch comes from reshuffles of them (the authors tile the labelled set), the
unlabelled batch from the whole training split (labelled images included), and G's step takes a batch of its own.
loss.unsup_weight=0 trains the same D on the labels alone: the supervised baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import registry
from ..errors import UserError
from .base import Losses, OptGroup, Phase, Recipe, UnconditionalG, make_optimizer

INIT_IMAGES = 500  # D's data-dependent initialisation sees this many training images


def labelled_subset(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices of per_class examples of every class, drawn with `seed` (a permutation of the whole set, then the
    first per_class of each class in its order), sorted."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    picks = []
    for c in range(int(y.max()) + 1):
        members = order[y[order] == c][:per_class]
        if len(members) < per_class:
            raise UserError(f"data.labelled_per_class={per_class}, but class {c} has {len(members)} images")
        picks.append(members)
    return torch.cat(picks).sort().values


@registry.register("recipe", "ssgan")
class SemiSupervisedGAN(UnconditionalG, Recipe):
    """Groups "D" and "G"; D's moving average (train.ema_decay) is what classifies at test time."""

    ema_nets = ("D",)

    def __init__(self, cfg, shape, data=None):
        m, d = cfg.model, cfg.data
        if shape and isinstance(shape[0], (tuple, list)):
            raise UserError(f"recipe 'ssgan' classifies images; '{d.name}' is a translation set")
        if m.num_classes < 2 or d.labelled_per_class < 1:
            raise UserError("recipe 'ssgan' needs model.num_classes (K >= 2) and data.labelled_per_class >= 1")
        if data is not None and (data.y is None or int(data.y.max()) >= m.num_classes):
            raise UserError(f"recipe 'ssgan': dataset '{d.name}' needs labels 0..{m.num_classes - 1}")
        super().__init__(cfg, shape, data)
        self.nets["G"] = registry.get("net", m.generator)(cfg, shape, data)
        self.nets["D"] = registry.get("net", m.discriminator)(cfg, shape, data)
        self.check_nets()
        self.w = cfg.loss.unsup_weight
        self.labelled = torch.zeros(0, dtype=torch.long)
        self.lab_gen = torch.Generator().manual_seed(d.labelled_seed + 1)
        self.lab_order, self.lab_pos = torch.zeros(0, dtype=torch.long), 0
        if data is not None:
            self.labelled = labelled_subset(data.y, d.labelled_per_class, d.labelled_seed)
            self.lab_x, self.lab_y = data.x[self.labelled], data.y[self.labelled]
            self.init_d(data.x)

    @torch.no_grad()
    def check_nets(self) -> None:
        """D: images -> (B, K) logits with features(x); G: z -> images; on two samples, before anything is written."""
        G, D = self.nets["G"], self.nets["D"]
        was = G.training, D.training
        G.eval(), D.eval()
        try:
            x = G(self.sample_z(2, generator=torch.Generator().manual_seed(0)))
            out, feats = D(x), D.features(x)
            if tuple(x.shape[1:]) != tuple(self.shape) or tuple(out.shape) != (2, self.cfg.model.num_classes) \
                    or feats.dim() != 2:
                raise UserError(f"recipe 'ssgan' needs G: z -> {tuple(self.shape)} and D: x -> "
                                f"(B, {self.cfg.model.num_classes}) class logits; got G {tuple(x.shape[1:])}, "
                                f"D {tuple(out.shape)}")
        except (RuntimeError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"recipe 'ssgan': the networks fail on a batch of 2 (D needs features(x) too): "
                            f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
        finally:
            G.train(was[0]), D.train(was[1])

    def init_d(self, x_u8: torch.Tensor) -> None:
        """D's data-dependent initialisation on INIT_IMAGES training images (a fixed draw)."""
        from ..data import to_float

        init = getattr(self.nets["D"], "init_from", None)
        if init is not None:
            pick = torch.randperm(len(x_u8), generator=torch.Generator().manual_seed(self.cfg.train.seed))
            self.nets["D"].train()
            init(to_float(x_u8[pick[:INIT_IMAGES]], self.cfg.data.range))

    def distribute(self, rank: int, world: int, shared: torch.Generator) -> None:
        if world > 1:
            raise UserError("recipe 'ssgan' trains in one process (its labelled batches are not split by rank)")
        super().distribute(rank, world, shared)

    # ---------------------------------------------------------------- the contract
    def optimizers(self) -> dict[str, OptGroup]:
        o = self.cfg.optim
        return {"D": OptGroup(make_optimizer(o, self.nets["D"].parameters(), o.lr_d), o.lr_d, ("D",)),
                "G": OptGroup(make_optimizer(o, self.nets["G"].parameters(), o.lr_g), o.lr_g, ("G",))}

    def phases(self) -> list[Phase]:
        if self.w == 0:  # the supervised baseline: D on the labels alone
            return [Phase(("D",))]
        return [Phase(("D",)), Phase(("G",), freeze=("D",))]

    def labelled_batch(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """The next n labelled examples from successive reshuffles of the labelled set."""
        from ..data import to_float

        idx = []
        while len(idx) < n:
            if self.lab_pos >= len(self.lab_order):
                self.lab_order, self.lab_pos = torch.randperm(len(self.labelled), generator=self.lab_gen), 0
            take = self.lab_order[self.lab_pos : self.lab_pos + n - len(idx)]
            idx += take.tolist()
            self.lab_pos += len(take)
        idx = torch.tensor(idx)
        return to_float(self.lab_x[idx], self.cfg.data.range).to(device), self.lab_y[idx].to(device)

    def losses(self, phase: str, batch: dict[str, torch.Tensor]) -> dict[str, Losses]:
        x = batch["x"]
        z = self.sample_z(x.shape[0], x.device)
        D = self.nets["D"]
        if phase == "G":
            with torch.no_grad():
                real = D.features(x).mean(0)
            fm = (D.features(self.nets["G"](z)).float().mean(0) - real.float()).pow(2).mean()
            return {"G": Losses({"fm": fm})}
        xl, yl = self.labelled_batch(x.shape[0], x.device)
        ll = D(xl).float()
        terms = {"sup": F.cross_entropy(ll, yl)}
        stats = {"acc (labelled)": (ll.detach().argmax(1) == yl).float().mean()}
        if self.w > 0:
            with torch.no_grad():
                fake = self.nets["G"](z)
            lse_u, lse_f = torch.logsumexp(D(x).float(), 1), torch.logsumexp(D(fake).float(), 1)
            terms["unsup"] = self.w * 0.5 * ((F.softplus(lse_u) - lse_u).mean() + F.softplus(lse_f).mean())
            stats.update({"D(x)": torch.sigmoid(lse_u.detach()).mean(), "D(G(z))": torch.sigmoid(lse_f.detach()).mean()})
        return {"D": Losses(terms, stats)}

    def preview_inputs(self, n: int, seed: int, device) -> dict[str, torch.Tensor]:
        return {"z": self.sample_z(n, generator=torch.Generator().manual_seed(seed + 777)).to(device)}

    def preview(self, fixed, nets) -> tuple[torch.Tensor, int]:
        """G's samples; the supervised baseline, which has no G, shows its labelled images instead."""
        from ..data import to_uint8

        if self.w == 0 and len(self.labelled) and hasattr(self, "lab_x"):
            return self.lab_x[: len(fixed["z"])], self.cfg.train.sample_grid
        return to_uint8(nets["G"](fixed["z"]), self.cfg.data.range), self.cfg.train.sample_grid

    def state_dict(self) -> dict:
        return {"labelled": self.labelled.clone(), "lab_order": self.lab_order.clone(), "lab_pos": self.lab_pos,
                "lab_gen": self.lab_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        if len(self.labelled) and not torch.equal(state["labelled"], self.labelled):
            raise UserError("the checkpoint's labelled images are not the ones data.labelled_per_class / "
                            "labelled_seed draw from this data")
        self.labelled = state["labelled"]
        self.lab_order, self.lab_pos = state["lab_order"], int(state["lab_pos"])
        self.lab_gen.set_state(state["lab_gen"])

    # ---------------------------------------------------------------- classifying (noise and sampling: UnconditionalG)
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Images in the nets' range -> D's class logits (B, K)."""
        return self.nets["D"](x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """D's last hidden layer: the code a linear probe reads."""
        return self.nets["D"].features(x)
