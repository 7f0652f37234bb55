"""The semi-supervised GAN's networks for MNIST (Salimans et al. 2016, openai/improved-gan's
train_mnist_feature_matching.py), written from its description:

D  Gaussian noise (sigma 0.3 on the pixels, 0.5 after every hidden layer, in training only) around five
   weight-normalised dense ReLU layers of 1000, 500, 250, 250, 250 units and a weight-normalised linear layer of K
   logits (the K classes; "fake" is the implicit K+1-th with logit 0). The hidden layers' scales are set by a
   data-dependent initialisation and then held; only the last layer's scale trains. `features(x)` is the last
   hidden layer (before its noise): what feature matching matches.
G  z (100) -> dense 500, BatchNorm (shift only, batch statistics always), softplus -> the same -> a weight-normalised
   dense layer of the image's size, sigmoid.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register

D_WIDTHS = (1000, 500, 250, 250, 250)


class WNLinear(nn.Module):
    """y = g * (V x) / ||V||_row + b (Salimans & Kingma 2016); g a trained parameter, or a buffer that only
    `init_from` sets."""

    def __init__(self, a: int, b: int, train_scale: bool, std: float = 0.1):
        super().__init__()
        self.v = nn.Parameter(torch.randn(b, a) * std)
        self.bias = nn.Parameter(torch.zeros(b))
        if train_scale:
            self.g = nn.Parameter(torch.ones(b))
        else:
            self.register_buffer("g", torch.ones(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.v * (self.g / self.v.norm(dim=1)).unsqueeze(1), self.bias)

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> torch.Tensor:
        """Data-dependent init: scale and bias so that this layer's outputs on x have mean 0 and variance 1."""
        pre = F.linear(x, self.v / self.v.norm(dim=1, keepdim=True))
        mean, std = pre.mean(0), pre.std(0, unbiased=False) + 1e-8
        self.g.copy_(1.0 / std)
        self.bias.copy_(-mean / std)
        return self(x)


class GaussianNoise(nn.Module):
    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.sigma * torch.randn_like(x) if self.training and self.sigma > 0 else x


class SSGANDiscriminator(nn.Module):
    """x (B, C, H, W) -> K class logits (B, K)."""

    def __init__(self, in_shape, num_classes: int, widths=D_WIDTHS, input_noise: float = 0.3,
                 hidden_noise: float = 0.5):
        super().__init__()
        dims = [math.prod(in_shape), *widths]
        self.noise = nn.ModuleList([GaussianNoise(input_noise)] + [GaussianNoise(hidden_noise) for _ in widths])
        self.hidden = nn.ModuleList([WNLinear(a, b, train_scale=False) for a, b in zip(dims[:-1], dims[1:])])
        self.out = WNLinear(dims[-1], num_classes, train_scale=True)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for noise, layer in zip(self.noise, self.hidden):
            h = F.relu(layer(noise(h)))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.noise[-1](self.features(x)))

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Each layer in turn, on the previous layers' outputs for x (noise on, as in training)."""
        h = x.flatten(1)
        for noise, layer in zip(self.noise, self.hidden):
            h = F.relu(layer.init_from(noise(h)))
        self.out.init_from(self.noise[-1](h))


class ShiftBatchNorm(nn.Module):
    """BatchNorm over the batch's own statistics (in training and sampling alike), a learned shift, no scale."""

    def __init__(self, n: int, eps: float = 1e-6):
        super().__init__()
        self.bn = nn.BatchNorm1d(n, eps=eps, affine=False, track_running_stats=False)
        self.shift = nn.Parameter(torch.zeros(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x) + self.shift


class SSGANGenerator(nn.Module):
    """z (B, z_dim) -> images (B, C, H, W) in [0, 1]."""

    def __init__(self, z_dim: int, out_shape, width: int = 500):
        super().__init__()
        self.out_shape = tuple(out_shape)
        self.fc1, self.bn1 = nn.Linear(z_dim, width, bias=False), ShiftBatchNorm(width)
        self.fc2, self.bn2 = nn.Linear(width, width, bias=False), ShiftBatchNorm(width)
        for fc in (self.fc1, self.fc2):
            nn.init.xavier_uniform_(fc.weight)
        self.out = WNLinear(width, math.prod(out_shape), train_scale=True)
        nn.init.xavier_uniform_(self.out.v)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if len(z) < 2:  # its BatchNorm normalises over the batch, at sampling time too (as the authors' G)
            from ..errors import UserError

            raise UserError("the semi-supervised GAN's G normalises over its batch: draw at least 2 samples at once")
        h = F.softplus(self.bn1(self.fc1(z)))
        h = F.softplus(self.bn2(self.fc2(h)))
        return torch.sigmoid(self.out(h)).view(len(z), *self.out_shape)


@register("net", "ssgan-mlp-d")
def _d(cfg, shape, data=None):
    return SSGANDiscriminator(shape, cfg.model.num_classes)


@register("net", "ssgan-mlp-g")
def _g(cfg, shape, data=None):
    return SSGANGenerator(cfg.model.z_dim, shape)
