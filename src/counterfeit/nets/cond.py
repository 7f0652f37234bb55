"""Label conditioning shared by the convolutional networks, and their common bases.

Every discriminator returns a logit per image (B,), or (logit, class_logits) with an auxiliary classifier head
(ACGAN). Conditioning on a label y, when `num_classes` > 0:
  G: "concat"      z <- [z, embed(y)]                                  (CGAN, Mirza & Osindero)
     "cbn"         class-conditional BatchNorm in every layer           (de Vries et al.; Miyato & Koyama)
  D: "concat"      an embed(y) plane is appended as an extra input channel  (CGAN)
     "projection"  logit += <embed(y), features>                      (Miyato & Koyama)
     "acgan"       a second head predicts y                            (Odena et al.)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import UserError


def sn_(module: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(module) if on else module


def _small_embedding(n: int, dim: int) -> nn.Embedding:
    """Projection's class embedding, N(0, 0.02) like the other weights: torch's N(0, 1) default makes the projection
    term <embed(y), h> ~ sqrt(dim) (56 for a 3,136-d DCGAN feature) and swamps the logit at the start."""
    e = nn.Embedding(n, dim)
    nn.init.normal_(e.weight, 0.0, 0.02)
    return e


class CondBatchNorm(nn.Module):
    """Class-conditional BatchNorm (de Vries et al. 2017; Miyato & Koyama 2018): normalise without an affine map,
    then scale and shift by a per-class gain and bias. The label then acts on every layer of G and never enters the
    batch statistics, where concatenated to z it competes with z's share of each unit's variance.
    The generator hands the labels over before its layers run (`CondGenerator._input`)."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, num_classes: int):
        super().__init__()
        self.bn = type(bn)(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=False)
        self.gain = nn.Embedding(num_classes, bn.num_features)
        self.bias = nn.Embedding(num_classes, bn.num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)
        self.y: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.y is not None, "conditional BatchNorm needs this batch's labels"
        # x.shape[0], not len(x): a traced export (TorchScript, ONNX) keeps the batch size a variable
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)  # (B, C) or (B, C, 1, 1)
        return self.bn(x) * self.gain(self.y).view(shape) + self.bias(self.y).view(shape)


class CondGenerator(nn.Module):
    """Base of the conditional generators. How G sees the label (`cond`):
      "concat"  z <- [z, embed(y)] at the input (Mirza & Osindero)
      "cbn"     z alone at the input; every BatchNorm becomes class-conditional (`CondBatchNorm`) once the subclass
                has built its layers (`_condition_batchnorm()`, called by the registry's builders via `g_cond`)."""

    def __init__(self, z_dim: int, num_classes: int, embed_dim: int, cond: str = "concat"):
        super().__init__()
        self.num_classes = num_classes
        self.cond = cond if num_classes else "none"
        self.embed = nn.Embedding(num_classes, embed_dim) if self.cond == "concat" else None
        self.in_dim = z_dim + (embed_dim if self.embed is not None else 0)
        self._cbn: list[CondBatchNorm] = []

    def _condition_batchnorm(self) -> int:
        """Swap every BatchNorm for a class-conditional one (cond "cbn"); returns how many were swapped."""
        for m in list(self.modules()):
            for child_name, child in list(m.named_children()):
                if isinstance(child, nn.modules.batchnorm._BatchNorm):
                    setattr(m, child_name, CondBatchNorm(child, self.num_classes))
        self._cbn = [m for m in self.modules() if isinstance(m, CondBatchNorm)]
        return len(self._cbn)

    def _input(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.cond == "none":
            return z
        assert y is not None, "a conditional generator needs labels"
        if self.cond == "cbn":
            for m in self._cbn:
                m.y = y
            return z
        return torch.cat([z, self.embed(y)], 1)  # (B, z_dim + embed_dim)


class CondDiscriminator(nn.Module):
    """Base: a feature body (subclass) + adversarial head + optional label conditioning."""

    def __init__(self, in_shape, num_classes: int, cond: str, feat_dim: int, sn: bool):
        super().__init__()
        self.num_classes, self.cond = (num_classes, cond) if num_classes else (0, "none")
        c, h, w = in_shape
        self.in_channels = c + (1 if self.cond == "concat" else 0)
        self.plane = nn.Embedding(num_classes, h * w) if self.cond == "concat" else None
        self.head = sn_(nn.Linear(feat_dim, 1), sn)
        self.proj = sn_(_small_embedding(num_classes, feat_dim), sn) if self.cond == "projection" else None
        self.aux = sn_(nn.Linear(feat_dim, num_classes), sn) if self.cond == "acgan" else None

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C', H, W) -> (B, feat_dim)
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None):
        if self.plane is not None:
            x = torch.cat([x, self.plane(y).view(x.shape[0], 1, *x.shape[2:])], 1)  # label as an extra channel
        h = self.features(x)  # (B, F)
        logit = self.head(h).squeeze(1)  # (B,)
        if self.proj is not None:
            logit = logit + (self.proj(y) * h).sum(1)
        if self.aux is not None:
            return logit, self.aux(h)  # (B,), (B, num_classes)
        return logit


def g_cond(g: CondGenerator, cfg) -> CondGenerator:
    """model.g_cond "cbn": make G's BatchNorms class-conditional now that its layers exist."""
    if g.cond == "cbn" and not g._condition_batchnorm():
        raise UserError(f"model.g_cond=cbn needs BatchNorm layers in G; '{cfg.model.generator}' has none")
    return g


def size_error(net: str, shape, sizes: str) -> UserError:
    return UserError(f"network '{net}' cannot make {shape[1]}x{shape[2]} images; it supports {sizes} "
                     f"(set data.image_size to one of them)")


def start_side(net: str, out_shape, ups: int) -> int:
    """The side a generator starts from when it doubles `ups` times up to a square image."""
    _, h, w = out_shape
    if h != w or h % 2**ups:
        raise size_error(net, out_shape, f"square sizes divisible by {2**ups} ({', '.join(str(2**ups * k) for k in (4, 6, 8))}, ...)")
    return h // 2**ups


def register_table(table: dict, init=None) -> None:
    """Register builders from a table {name: make(model_cfg, shape) -> module}. Conditional generators get their
    label conditioning (`g_cond`); `init` (e.g. Radford et al.'s N(0, 0.02)) runs on every network of the table."""
    from ..registry import register

    for name, make in table.items():
        def build(cfg, shape, data=None, make=make):
            net = make(cfg.model, shape)
            if isinstance(net, CondGenerator):
                g_cond(net, cfg)
            if init is not None:
                init(net)
            return net

        register("net", name)(build)
