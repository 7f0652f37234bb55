"""Residual networks: SNGAN's 32x32 ResNet generator and critic (Miyato et al. 2018; after Gulrajani et al.'s
WGAN-GP ResNet), and CycleGAN's image-to-image ResNet generator (Zhu et al. 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from .cond import CondDiscriminator, CondGenerator, register_table, sn_, start_side
from .layers import Dropout, norm_layer


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
        self.c1, self.c2 = sn_(nn.Conv2d(cin, cout, 3, 1, 1), sn), sn_(nn.Conv2d(cout, cout, 3, 1, 1), sn)
        self.skip = sn_(nn.Conv2d(cin, cout, 1), sn)
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
        c = out_shape[0]
        self.start, self.width = start_side("resnet-g", out_shape, 3), width
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


register_table({
    "resnet-g": lambda m, s: ResNetGenerator(m.z_dim, s, m.num_classes, m.embed_dim, m.width_g or 256, m.g_cond),
    "resnet-d": lambda m, s: ResNetDiscriminator(s, m.num_classes, m.d_cond, sn=m.spectral_norm,
                                                 width=m.width_d or 128),
})


# ---------------------------------------------------------------------------------------------- CycleGAN


class _ResBlock(nn.Module):
    """Reflection pad, 3x3 conv, norm, ReLU, [dropout], reflection pad, 3x3 conv, norm; plus the input."""

    def __init__(self, ch: int, norm: str, dropout: bool):
        super().__init__()
        bias = norm == "instance"
        self.body = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), norm_layer(norm, ch),
                                  nn.ReLU(True), *([Dropout(0.5)] if dropout else []),
                                  nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3, bias=bias), norm_layer(norm, ch))

    def forward(self, x):
        return x + self.body(x)


class CycleResNetGenerator(nn.Module):
    """CycleGAN's generator (after Johnson et al.): c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf, u2ngf, ungf, c7s1-out, tanh.

    Reflection padding around the 7x7 convolutions and inside the residual blocks; sides divisible by 4."""

    def __init__(self, in_ch: int, out_ch: int, in_shape: tuple[int, int], ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", dropout: bool = False):
        super().__init__()
        h, w = in_shape
        if h % 4 or w % 4:
            raise UserError(f"the CycleGAN ResNet generator needs sides divisible by 4 (28, 32, 64, 256, ...), "
                            f"not {h}x{w}")
        bias = norm == "instance"
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_ch, ngf, 7, bias=bias), norm_layer(norm, ngf),
                                   nn.ReLU(True)]
        ch = ngf
        for _ in range(2):  # (B, ngf, H, W) -> (B, 4ngf, H/4, W/4)
            layers += [nn.Conv2d(ch, 2 * ch, 3, 2, 1, bias=bias), norm_layer(norm, 2 * ch), nn.ReLU(True)]
            ch *= 2
        layers += [_ResBlock(ch, norm, dropout) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1, bias=bias), norm_layer(norm, ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, out_ch, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, out_ch, H, W)
