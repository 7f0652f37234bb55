"""Variational autoencoder (Kingma & Welling 2014), the explicit-density baseline beside the GANs.

Trained by the same loop in joint mode: the encoder plays the part of "D" and the decoder of "G", and both take
their gradients from one loss, the negative ELBO per image in nats, with a Bernoulli decoder on grey levels in
[0, 1] (as in the VAE paper's MNIST experiments):
    -ELBO = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I))   (terms 'recon' and 'kl')
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UserError
from ..registry import register
from .base import Losses, NoiseGAN


def negative_elbo(encoder, decoder, x: torch.Tensor, sample: bool = True) -> dict[str, torch.Tensor]:
    """Per-batch means of the two -ELBO terms (nats per image); x in [0, 1], (B, C, H, W)."""
    mu, logvar = encoder(x)  # (B, z), (B, z)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample else mu
    # -log p(x|z) for a Bernoulli decoder = BCE with logits, summed over pixels
    recon = F.binary_cross_entropy_with_logits(decoder(z, logits=True), x, reduction="none").flatten(1).sum(1).mean()
    # KL(N(mu, sigma^2) || N(0, 1)) = -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2)
    kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)).mean()
    return {"recon": recon, "kl": kl}


@register("recipe", "vae")
class VAE(NoiseGAN):
    bf16_checked = False  # its ELBO is a reported figure: not trained in bf16 until checked
    supports_joint = True

    def __init__(self, cfg, shape, data=None):
        if cfg.data.range != "01":
            raise UserError("recipe 'vae' models pixels in [0, 1]: set data.range=01")
        if not cfg.train.simultaneous or cfg.train.n_dis != 1:
            raise UserError("recipe 'vae' trains encoder and decoder together: set train.simultaneous=true, n_dis=1")
        super().__init__(cfg, shape, data)

    def joint_losses(self, real, labels):
        terms = negative_elbo(self.D, self.G, real)
        stats = {"ELBO (nats)": -(terms["recon"].detach() + terms["kl"].detach())}
        return Losses(terms, stats), Losses(terms)  # the loop takes encoder grads from the first, decoder from the second

    def encode(self, x: torch.Tensor, E=None) -> torch.Tensor:
        """Images in [0, 1] -> the posterior's mean: the VAE's code, beside a BiGAN's E(x)."""
        return (E or self.D)(x)[0]

    def d_losses(self, real, labels):
        raise UserError("recipe 'vae' has no separate D step")

    g_losses = d_losses


@torch.no_grad()
def evaluate_elbo(recipe: VAE, images_u8: torch.Tensor, batch: int = 500, seed: int = 0) -> dict:
    """Mean ELBO (nats per image, one z sample each) of uint8 images under a trained VAE."""
    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(seed)
        tot, n = 0.0, 0
        for i in range(0, len(images_u8), batch):
            x = images_u8[i : i + batch].float() / 255.0
            t = negative_elbo(recipe.D, recipe.G, x)
            tot -= float(t["recon"] + t["kl"]) * len(x)
            n += len(x)
    return {"elbo": tot / n, "n": n}
