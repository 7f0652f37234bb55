"""Convolutional GAN networks: the TensorFlow tutorial's DCGAN, Radford et al.'s DCGAN, SNGAN's CNN and ResNet.

Every discriminator returns a logit per image (B,), or (logit, class_logits) with an auxiliary classifier head
(ACGAN). Conditioning on a label y, when `num_classes` > 0:
  G: "concat"      z <- [z, embed(y)]                                  (CGAN, Mirza & Osindero)
  D: "concat"      an embed(y) plane is appended as an extra input channel  (CGAN)
     "projection"  logit += <embed(y), features>                      (Miyato & Koyama)
     "acgan"       a second head predicts y                            (Odena et al.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import UserError
from ..registry import register


def _sn(module: nn.Module, on: bool) -> nn.Module:
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
        assert self.y is not None and len(self.y) == len(x), "conditional BatchNorm needs this batch's labels"
        shape = (len(x), -1) + (1,) * (x.dim() - 2)  # (B, C) or (B, C, 1, 1)
        return self.bn(x) * self.gain(self.y).view(shape) + self.bias(self.y).view(shape)


class CondGenerator(nn.Module):
    """Base of the conditional generators. How G sees the label (`cond`):
      "concat"  z <- [z, embed(y)] at the input (Mirza & Osindero)
      "cbn"     z alone at the input; every BatchNorm becomes class-conditional (`CondBatchNorm`) once the subclass
                has built its layers (`_condition_batchnorm()`, called by the registry's builders via `_g_cond`)."""

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
        self.head = _sn(nn.Linear(feat_dim, 1), sn)
        self.proj = _sn(_small_embedding(num_classes, feat_dim), sn) if self.cond == "projection" else None
        self.aux = _sn(nn.Linear(feat_dim, num_classes), sn) if self.cond == "acgan" else None

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


# ---------------------------------------------------------------------------------------------- TF tutorial


class TFGenerator(CondGenerator):
    """TensorFlow DCGAN tutorial: Dense(7*7*256) -> BN -> LReLU -> ConvT 128 (s1) -> ConvT 64 (s2) -> ConvT 1 (s2, tanh).

    'same' padding, no biases; Keras defaults: LeakyReLU slope 0.3, BatchNorm momentum 0.99 (torch 0.01), eps 1e-3.
    """

    def __init__(self, z_dim=100, out_shape=(1, 28, 28), num_classes=0, embed_dim=50, cond="concat"):
        super().__init__(z_dim, num_classes, embed_dim, cond)
        c, h, w = out_shape
        assert h == w and h % 4 == 0, "the TF tutorial generator upsamples 4x from h/4"
        self.s = h // 4

        def bn(n):
            return nn.BatchNorm2d(n, momentum=0.01, eps=1e-3)

        self.fc = nn.Linear(self.in_dim, self.s * self.s * 256, bias=False)
        self.bn0 = nn.BatchNorm1d(self.s * self.s * 256, momentum=0.01, eps=1e-3)
        self.net = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), bn(128), nn.LeakyReLU(0.3),  # (B, 128, s, s)
            nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False), bn(64), nn.LeakyReLU(0.3),  # 2s
            nn.ConvTranspose2d(64, c, 5, 2, 2, output_padding=1, bias=False), nn.Tanh(),  # (B, c, 4s, 4s)
        )

    def forward(self, z, y=None):
        h = F.leaky_relu(self.bn0(self.fc(self._input(z, y))), 0.3)
        return self.net(h.view(-1, 256, self.s, self.s))


class TFDiscriminator(CondDiscriminator):
    """Conv 64 (5, s2) -> LReLU -> Dropout 0.3 -> Conv 128 (5, s2) -> LReLU -> Dropout 0.3 -> Dense(1)."""

    def __init__(self, in_shape=(1, 28, 28), num_classes=0, cond="none"):
        _, h, w = in_shape
        feat = 128 * math.ceil(h / 4) * math.ceil(w / 4)
        super().__init__(in_shape, num_classes, cond, feat, sn=False)
        self.body = nn.Sequential(
            nn.Conv2d(self.in_channels, 64, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
            nn.Conv2d(64, 128, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3), nn.Flatten(),
        )

    def features(self, x):
        return self.body(x)


# ---------------------------------------------------------------------------------------------- Radford et al.


class DCGANGenerator(CondGenerator):
    """Radford et al.: project z to (8g, s, s), then ConvT(4, s2) + BN + ReLU doubling up to the image; tanh.

    28x28 starts at 7x7 (2 upsamplings), 32x32 at 4x4 (3), 64x64 at 4x4 (4).
    """

    def __init__(self, z_dim=100, out_shape=(1, 28, 28), ngf=64, num_classes=0, embed_dim=50, depth=0, cond="concat"):
        super().__init__(z_dim, num_classes, embed_dim, cond)
        c, h, _ = out_shape
        start = 7 if h == 28 else 4
        ups = int(round(math.log2(h / start)))
        assert start * 2**ups == h, f"DCGAN generator supports 28, 32, 64 (and 4*2^k) pixels, not {h}"
        ch = ngf * 2 ** (ups - 1)
        self.start, self.ch = start, ch
        self.fc = nn.Linear(self.in_dim, ch * start * start, bias=False)
        self.bn0 = nn.BatchNorm1d(ch * start * start)

        def refine(n):  # depth > 0: 3x3 stride-1 blocks at this resolution (cheap below the output size)
            return [m for _ in range(depth) for m in (nn.Conv2d(n, n, 3, 1, 1, bias=False), nn.BatchNorm2d(n),
                                                      nn.ReLU(True))]

        layers = refine(ch)
        for i in range(ups - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
            layers += refine(ch)
        layers += [nn.ConvTranspose2d(ch, c, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z, y=None):
        h = F.relu(self.bn0(self.fc(self._input(z, y))))
        return self.net(h.view(-1, self.ch, self.start, self.start))  # (B, c, H, W)


class DCGANDiscriminator(CondDiscriminator):
    """Conv(4, s2) + LeakyReLU 0.2 halving down to ~4x4 (BN on all but the first), then a linear logit."""

    def __init__(self, in_shape=(1, 28, 28), ndf=64, num_classes=0, cond="none", batchnorm=True, sn=False,
                 depth=0):
        _, h, _ = in_shape
        downs = 2 if h == 28 else int(round(math.log2(h / 4)))
        ch_out = ndf * 2 ** (downs - 1)
        side = h // 2**downs
        super().__init__(in_shape, num_classes, cond, ch_out * side * side, sn)
        layers, ch = [], self.in_channels

        def block(cin, cout, k, s, p, norm):
            return [_sn(nn.Conv2d(cin, cout, k, s, p, bias=not norm), sn), *([nn.BatchNorm2d(cout)] if norm else []),
                    nn.LeakyReLU(0.2, True)]

        for i in range(downs):
            nxt = ndf * 2**i
            layers += block(ch, nxt, 4, 2, 1, batchnorm and i > 0)
            for _ in range(depth):  # depth > 0: 3x3 stride-1 blocks after each downsampling
                layers += block(nxt, nxt, 3, 1, 1, batchnorm)
            ch = nxt
        self.body = nn.Sequential(*layers, nn.Flatten())

    def features(self, x):
        return self.body(x)


def dcgan_init_(module: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02); BN weight ~ N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, CondBatchNorm):  # the per-class gains and biases, like BN's own
            nn.init.normal_(m.gain.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias.weight)


# ---------------------------------------------------------------------------------------------- SNGAN


class SNGANGenerator(CondGenerator):
    """SNGAN's standard CNN generator: z -> (512, 4, 4) -> 3 x [ConvT(4, s2) + BN + ReLU] -> Conv3 + tanh (32x32)."""

    def __init__(self, z_dim=128, out_shape=(3, 32, 32), num_classes=0, embed_dim=128, width=512, cond="concat"):
        super().__init__(z_dim, num_classes, embed_dim, cond)
        c, h, _ = out_shape
        self.start = h // 8
        self.width = width
        self.fc = nn.Linear(self.in_dim, width * self.start**2)
        w = width
        layers = []
        for _ in range(3):
            layers += [nn.ConvTranspose2d(w, w // 2, 4, 2, 1), nn.BatchNorm2d(w // 2), nn.ReLU(True)]
            w //= 2
        self.net = nn.Sequential(*layers, nn.Conv2d(w, c, 3, 1, 1), nn.Tanh())

    def forward(self, z, y=None):
        return self.net(self.fc(self._input(z, y)).view(-1, self.width, self.start, self.start))


class SNGANDiscriminator(CondDiscriminator):
    """SNGAN's standard CNN: [Conv3 + Conv4 s2] x 3 (64, 128, 256) + Conv3 512, LeakyReLU 0.1, spectral norm."""

    def __init__(self, in_shape=(3, 32, 32), num_classes=0, cond="none", sn=True, width=64):
        _, h, _ = in_shape
        side = h // 8
        super().__init__(in_shape, num_classes, cond, width * 8 * side * side, sn)
        layers, ch = [], self.in_channels
        for mult in (1, 2, 4):
            w = width * mult
            layers += [_sn(nn.Conv2d(ch, w, 3, 1, 1), sn), nn.LeakyReLU(0.1), _sn(nn.Conv2d(w, w, 4, 2, 1), sn),
                       nn.LeakyReLU(0.1)]
            ch = w
        layers += [_sn(nn.Conv2d(ch, width * 8, 3, 1, 1), sn), nn.LeakyReLU(0.1), nn.Flatten()]
        self.body = nn.Sequential(*layers)

    def features(self, x):
        return self.body(x)


class _GBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.bn1, self.c1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.bn2, self.c2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = F.interpolate(F.relu(self.bn1(x)), scale_factor=2)
        h = self.c2(F.relu(self.bn2(self.c1(h))))
        return h + self.skip(F.interpolate(x, scale_factor=2))


class _DBlock(nn.Module):
    def __init__(self, cin, cout, sn, down=True, first=False):
        super().__init__()
        self.c1, self.c2 = _sn(nn.Conv2d(cin, cout, 3, 1, 1), sn), _sn(nn.Conv2d(cout, cout, 3, 1, 1), sn)
        self.skip = _sn(nn.Conv2d(cin, cout, 1), sn)
        self.down, self.first = down, first

    def forward(self, x):
        h = self.c2(F.relu(self.c1(x if self.first else F.relu(x))))
        s = self.skip(x)
        if self.down:
            h, s = F.avg_pool2d(h, 2), F.avg_pool2d(s, 2)
        return h + s


class ResNetGenerator(CondGenerator):
    """SNGAN's 32x32 ResNet generator: z -> (256, 4, 4) -> 3 up-blocks -> BN, ReLU, Conv3, tanh."""

    def __init__(self, z_dim=128, out_shape=(3, 32, 32), num_classes=0, embed_dim=128, width=256, cond="concat"):
        super().__init__(z_dim, num_classes, embed_dim, cond)
        c, h, _ = out_shape
        self.start, self.width = h // 8, width
        self.fc = nn.Linear(self.in_dim, width * self.start**2)
        self.blocks = nn.Sequential(_GBlock(width, width), _GBlock(width, width), _GBlock(width, width))
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, c, 3, 1, 1), nn.Tanh())

    def forward(self, z, y=None):
        return self.out(self.blocks(self.fc(self._input(z, y)).view(-1, self.width, self.start, self.start)))


class ResNetDiscriminator(CondDiscriminator):
    """SNGAN's 32x32 ResNet critic: 2 down-blocks + 2 blocks, ReLU, global sum pooling, spectral norm."""

    def __init__(self, in_shape=(3, 32, 32), num_classes=0, cond="none", sn=True, width=128):
        super().__init__(in_shape, num_classes, cond, width, sn)
        self.blocks = nn.Sequential(_DBlock(self.in_channels, width, sn, True, True), _DBlock(width, width, sn, True),
                                    _DBlock(width, width, sn, False), _DBlock(width, width, sn, False))

    def features(self, x):
        return F.relu(self.blocks(x)).sum(dim=(2, 3))  # (B, width)


# ---------------------------------------------------------------------------------------------- registry


def _cond(cfg):
    return cfg.model.num_classes, cfg.model.d_cond


def _g_cond(g: CondGenerator, cfg) -> CondGenerator:
    """model.g_cond "cbn": make G's BatchNorms class-conditional now that its layers exist."""
    if g.cond == "cbn" and not g._condition_batchnorm():
        raise UserError(f"model.g_cond=cbn needs BatchNorm layers in G; '{cfg.model.generator}' has none")
    return g


@register("net", "tf-dcgan-g")
def _tf_g(cfg, shape, data=None):
    return _g_cond(TFGenerator(cfg.model.z_dim, shape, cfg.model.num_classes, cfg.model.embed_dim, cfg.model.g_cond),
                   cfg)


@register("net", "tf-dcgan-d")
def _tf_d(cfg, shape, data=None):
    return TFDiscriminator(shape, *_cond(cfg))


@register("net", "dcgan-g")
def _dc_g(cfg, shape, data=None):
    g = _g_cond(DCGANGenerator(cfg.model.z_dim, shape, cfg.model.width_g or 64, cfg.model.num_classes,
                               cfg.model.embed_dim, cfg.model.depth_g, cfg.model.g_cond), cfg)
    dcgan_init_(g)
    return g


@register("net", "dcgan-d")
def _dc_d(cfg, shape, data=None):
    d = DCGANDiscriminator(shape, cfg.model.width_d or 64, *_cond(cfg), batchnorm=cfg.model.d_batchnorm,
                           sn=cfg.model.spectral_norm, depth=cfg.model.depth_d)
    dcgan_init_(d)
    return d


@register("net", "sngan-g")
def _sn_g(cfg, shape, data=None):
    return _g_cond(SNGANGenerator(cfg.model.z_dim, shape, cfg.model.num_classes, cfg.model.embed_dim,
                                  cfg.model.width_g or 512, cfg.model.g_cond), cfg)


@register("net", "sngan-d")
def _sn_d(cfg, shape, data=None):
    return SNGANDiscriminator(shape, *_cond(cfg), sn=cfg.model.spectral_norm, width=cfg.model.width_d or 64)


@register("net", "resnet-g")
def _rn_g(cfg, shape, data=None):
    return _g_cond(ResNetGenerator(cfg.model.z_dim, shape, cfg.model.num_classes, cfg.model.embed_dim,
                                   cfg.model.width_g or 256, cfg.model.g_cond), cfg)


@register("net", "resnet-d")
def _rn_d(cfg, shape, data=None):
    return ResNetDiscriminator(shape, *_cond(cfg), sn=cfg.model.spectral_norm, width=cfg.model.width_d or 128)
