"""The 2014 GAN's networks: an MLP generator and a maxout + dropout discriminator."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..registry import register
from .layers import Dropout, Maxout, init_uniform_


class MLPGenerator(nn.Module):
    """z (B, z_dim) -> ReLU hidden layers -> sigmoid (or tanh) image (B, C, H, W)."""

    def __init__(self, z_dim: int, hidden: list[int], out_shape: tuple[int, int, int], out: str = "sigmoid",
                 init_range: float = 0.05, output_bias: torch.Tensor | None = None):
        super().__init__()
        self.out_shape = tuple(out_shape)
        dims = [z_dim, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(dims[-1], math.prod(out_shape))
        self.activation = out
        init_uniform_(self, init_range)
        if output_bias is not None:
            with torch.no_grad():
                self.out.bias.copy_(output_bias.reshape(-1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        a = self.out(self.hidden(z))  # (B, C*H*W) pre-activation
        x = torch.sigmoid(a) if self.activation == "sigmoid" else torch.tanh(a)
        return x.view(z.shape[0], *self.out_shape)  # (B, C, H, W)


class MaxoutDiscriminator(nn.Module):
    """x (B, C, H, W) -> [dropout -> maxout] x layers -> dropout -> linear -> one logit (B,).

    Dropout is applied to each layer's *input*, keeping `input_keep` of the pixels and `hidden_keep` of the
    hidden units (pylearn2's dropout_fprop with input_include_probs {h0: .8}, default .5).
    """

    def __init__(self, in_shape: tuple[int, int, int], units: int = 240, pieces: int = 5, layers: int = 2,
                 input_keep: float = 0.8, hidden_keep: float = 0.5, init_range: float = 0.005):
        super().__init__()
        n_in = math.prod(in_shape)
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks += [Dropout(1.0 - (input_keep if i == 0 else hidden_keep)), Maxout(n_in if i == 0 else units, units, pieces)]
        blocks += [Dropout(1.0 - hidden_keep)]
        self.features = nn.Sequential(*blocks)
        self.logit = nn.Linear(units, 1)
        init_uniform_(self, init_range)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.flatten(1))  # (B, units)
        return self.logit(h).squeeze(1)  # (B,) logits: large = real


def logit_of_marginals(marginals: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Sigmoid bias that makes an all-zero pre-activation output the data's mean pixel values."""
    p = marginals.clamp(eps, 1 - eps)
    return torch.log(p / (1 - p))


@register("net", "mlp")
def build_mlp_generator(cfg, shape, data=None):
    bias = None
    if cfg.model.g_output_bias_from_data and data is not None and cfg.data.range == "01":
        bias = logit_of_marginals(data.pixel_marginals())
    out = "sigmoid" if cfg.data.range == "01" else "tanh"
    return MLPGenerator(cfg.model.z_dim, list(cfg.model.g_hidden), shape, out, cfg.model.g_init_range, bias)


@register("net", "maxout")
def build_maxout_discriminator(cfg, shape, data=None):
    m = cfg.model
    return MaxoutDiscriminator(shape, m.d_units, m.d_pieces, m.d_layers, m.d_input_keep, m.d_hidden_keep, m.d_init_range)
