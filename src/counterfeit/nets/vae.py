"""VAE networks: an encoder x -> (mu, logvar) and a decoder z -> Bernoulli pixel logits, as MLPs or convnets."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register


class Decoder(nn.Module):
    """z (B, z_dim) -> images (B, C, H, W) in [0, 1]; logits=True gives the Bernoulli parameters' logits (through
    forward, so that DistributedDataParallel sees the call)."""

    def __init__(self, body: nn.Module, out_shape):
        super().__init__()
        self.body, self.out_shape = body, tuple(out_shape)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self(z, logits=True)

    def forward(self, z: torch.Tensor, logits: bool = False) -> torch.Tensor:
        out = self.body(z).view(z.shape[0], *self.out_shape)
        return out if logits else torch.sigmoid(out)


class Encoder(nn.Module):
    """x (B, C, H, W) -> mu, logvar (B, z_dim) each."""

    def __init__(self, body: nn.Module, feat: int, z_dim: int):
        super().__init__()
        self.body, self.head = body, nn.Linear(feat, 2 * z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.body(x)).chunk(2, dim=1)
        return mu, logvar


def mlp_decoder(z_dim, hidden, shape) -> Decoder:
    dims, layers = [z_dim, *hidden], []
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return Decoder(nn.Sequential(*layers, nn.Linear(dims[-1], math.prod(shape))), shape)


def mlp_encoder(shape, hidden, z_dim) -> Encoder:
    dims, layers = [math.prod(shape), *hidden], [nn.Flatten()]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return Encoder(nn.Sequential(*layers), dims[-1], z_dim)


def conv_decoder(z_dim, shape, width=32) -> Decoder:
    c, h, _ = shape
    s = h // 4
    body = nn.Sequential(nn.Linear(z_dim, 2 * width * s * s), nn.ReLU(), nn.Unflatten(1, (2 * width, s, s)),
                         nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.ReLU(),
                         nn.ConvTranspose2d(width, c, 4, 2, 1))
    return Decoder(body, shape)


def conv_encoder(shape, z_dim, width=32) -> Encoder:
    c, h, _ = shape
    s = h // 4
    body = nn.Sequential(nn.Conv2d(c, width, 4, 2, 1), nn.ReLU(), nn.Conv2d(width, 2 * width, 4, 2, 1), nn.ReLU(),
                         nn.Flatten())
    return Encoder(body, 2 * width * s * s, z_dim)


@register("net", "vae-mlp-decoder")
def _mlp_dec(cfg, shape, data=None):
    return mlp_decoder(cfg.model.z_dim, list(cfg.model.g_hidden), shape)


@register("net", "vae-mlp-encoder")
def _mlp_enc(cfg, shape, data=None):
    return mlp_encoder(shape, list(cfg.model.d_hidden), cfg.model.z_dim)


@register("net", "vae-conv-decoder")
def _conv_dec(cfg, shape, data=None):
    return conv_decoder(cfg.model.z_dim, shape, cfg.model.width_g or 32)


@register("net", "vae-conv-encoder")
def _conv_enc(cfg, shape, data=None):
    return conv_encoder(shape, cfg.model.z_dim, cfg.model.width_d or 32)
