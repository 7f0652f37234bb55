"""SNGAN's standard CNN generator and spectrally normalised discriminator (Miyato et al. 2018), 32x32."""

from __future__ import annotations

from torch import nn

from .cond import CondDiscriminator, CondGenerator, register_table, sn_, start_side


class SNGANGenerator(CondGenerator):
    """SNGAN's standard CNN generator: z -> (512, 4, 4) -> 3 x [ConvT(4, s2) + BN + ReLU] -> Conv3 + tanh (32x32)."""

    def __init__(self, z_dim=128, out_shape=(3, 32, 32), num_classes=0, embed_dim=128, width=512, cond="concat"):
        super().__init__(z_dim, num_classes, embed_dim, cond)
        c = out_shape[0]
        self.start = start_side("sngan-g", out_shape, 3)
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
            layers += [sn_(nn.Conv2d(ch, w, 3, 1, 1), sn), nn.LeakyReLU(0.1), sn_(nn.Conv2d(w, w, 4, 2, 1), sn),
                       nn.LeakyReLU(0.1)]
            ch = w
        layers += [sn_(nn.Conv2d(ch, width * 8, 3, 1, 1), sn), nn.LeakyReLU(0.1), nn.Flatten()]
        self.body = nn.Sequential(*layers)

    def features(self, x):
        return self.body(x)


register_table({
    "sngan-g": lambda m, s: SNGANGenerator(m.z_dim, s, m.num_classes, m.embed_dim, m.width_g or 512, m.g_cond),
    "sngan-d": lambda m, s: SNGANDiscriminator(s, m.num_classes, m.d_cond, sn=m.spectral_norm, width=m.width_d or 64),
})
