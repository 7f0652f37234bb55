"""Convolutional GANs at 28-64 pixels: the TensorFlow tutorial's DCGAN and Radford et al.'s DCGAN.

Label conditioning (CGAN / projection / ACGAN heads, conditional BatchNorm) comes from `cond.py`.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from .cond import CondBatchNorm, CondDiscriminator, CondGenerator, register_table, size_error, sn_
from .layers import Dropout, ToContiguous


# ---------------------------------------------------------------------------------------------- TF tutorial


class TFGenerator(CondGenerator):
    """TensorFlow DCGAN tutorial: Dense(7*7*256) -> BN -> LReLU -> ConvT 128 (s1) -> ConvT 64 (s2) -> ConvT 1 (s2, tanh).

    'same' padding, no biases; Keras defaults: LeakyReLU slope 0.3, BatchNorm momentum 0.99 (torch 0.01), eps 1e-3.
    """

    def __init__(self, z_dim=100, out_shape=(1, 28, 28), num_classes=0, embed_dim=50, cond="concat"):
        super().__init__(z_dim, num_classes, embed_dim, cond)
        c, h, w = out_shape
        if h != w or h % 4:
            raise size_error("tf-dcgan-g", out_shape, "square sizes divisible by 4 (28, 32, ...)")
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
            nn.Conv2d(self.in_channels, 64, 5, 2, 2), nn.LeakyReLU(0.3), Dropout(0.3),
            nn.Conv2d(64, 128, 5, 2, 2), ToContiguous(), nn.LeakyReLU(0.3), Dropout(0.3), nn.Flatten(),
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
        if start * 2**ups != h or h != out_shape[2] or ups < 1:
            raise size_error("dcgan-g", out_shape, "square 28x28 and 4*2^k (8, 16, 32, 64, 128, ...)")
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
            return [sn_(nn.Conv2d(cin, cout, k, s, p, bias=not norm), sn), *([nn.BatchNorm2d(cout)] if norm else []),
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


register_table({
    "tf-dcgan-g": lambda m, s: TFGenerator(m.z_dim, s, m.num_classes, m.embed_dim, m.g_cond),
    "tf-dcgan-d": lambda m, s: TFDiscriminator(s, m.num_classes, m.d_cond),
})
register_table({
    "dcgan-g": lambda m, s: DCGANGenerator(m.z_dim, s, m.width_g or 64, m.num_classes, m.embed_dim, m.depth_g,
                                           m.g_cond),
    "dcgan-d": lambda m, s: DCGANDiscriminator(s, m.width_d or 64, m.num_classes, m.d_cond, batchnorm=m.d_batchnorm,
                                               sn=m.spectral_norm, depth=m.depth_d),
}, init=dcgan_init_)
