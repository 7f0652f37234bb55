"""Image-to-image networks: U-Net and CycleGAN's ResNet generator, PatchGAN discriminator."""

from __future__ import annotations

import warnings

import pytest
import torch

from counterfeit.errors import UserError
from counterfeit.nets.layers import Dropout
from counterfeit.nets.patchgan import PatchDiscriminator
from counterfeit.nets.resnet import CycleResNetGenerator
from counterfeit.nets.unet import UNetGenerator


@pytest.mark.parametrize("in_ch,out_ch,shape,depth", [(1, 3, (32, 32), 5), (3, 3, (64, 64), 6), (1, 1, (32, 64), 5),
                                                      (3, 1, (256, 256), 8), (1, 3, (28, 28), 2)])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_unet_shapes(in_ch, out_ch, shape, depth, norm):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = UNetGenerator(in_ch, out_ch, depth, shape, ngf=4, norm=norm)
    x = torch.randn(2, in_ch, *shape)
    y = g(x)
    assert y.shape == (2, out_ch, *shape) and y.abs().max() <= 1
    assert len(g.downs) == depth and len(g.ups) == depth


def test_unet_refuses_sizes_that_do_not_fit_and_names_those_that_do():
    with pytest.raises(UserError, match=r"divisible by 32 \(32, 64, 96, 128, \.\.\.\), not 28x28"):
        UNetGenerator(1, 3, 5, (28, 28))
    with pytest.raises(UserError, match="not 256x200"):
        UNetGenerator(3, 3, 8, (256, 200))


def test_unet_dropout_follows_the_authors_depth_rule():
    g = UNetGenerator(3, 3, 8, (256, 256), ngf=4)  # 256x256: three blocks with dropout
    assert g.n_dropout == 3 and sum(isinstance(m, Dropout) for m in g.modules()) == 3
    assert [i for i, u in enumerate(g.ups) if any(isinstance(m, Dropout) for m in u)] == [4, 5, 6]
    with pytest.warns(UserWarning, match="no decoder block with dropout"):
        g = UNetGenerator(1, 3, 5, (32, 32), ngf=4)
    assert g.n_dropout == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when dropout is off on purpose
        UNetGenerator(1, 3, 5, (32, 32), ngf=4, dropout=False)


def test_unet_skips_carry_the_input():
    """With the innermost level zeroed (nothing passes the bottleneck), one changed input pixel still changes the
    output, most near that pixel: only the skips can carry it. BatchNorm in eval mode, so normalisation is local."""
    g = UNetGenerator(1, 1, 4, (32, 32), ngf=4, norm="batch", dropout=False).eval()
    with torch.no_grad():
        for p in g.downs[-1].parameters():
            p.zero_()
    x = torch.zeros(1, 1, 32, 32)
    x2 = x.clone()
    x2[0, 0, 10, 10] = 1.0
    with torch.no_grad():
        d = (g(x2) - g(x)).abs()[0, 0]
    r, c = divmod(int(d.argmax()), 32)
    assert d.max() > 0 and abs(r - 10) <= 3 and abs(c - 10) <= 3, (r, c)


@pytest.mark.parametrize("n_layers,rf", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field_is_computed_and_measured(n_layers, rf):
    d = PatchDiscriminator(2, ndf=4, n_layers=n_layers, norm="instance")
    assert d.receptive_field() == rf
    # measured: the input pixels one output logit's gradient reaches (a 128x128 input so the field is not cut)
    d.eval()
    for p in d.parameters():  # positive weights: no gradient cancels to an exact zero inside the field
        torch.nn.init.uniform_(p, 0.01, 0.1) if p.dim() > 1 else torch.nn.init.zeros_(p)
    for m in d.modules():
        if isinstance(m, torch.nn.InstanceNorm2d):  # instance norm spreads a dependence over the whole image
            m.forward = lambda x: x
    x = torch.rand(1, 2, 128, 128, requires_grad=True)
    out = d(x)
    gh, gw = out.shape[2] // 2, out.shape[3] // 2
    out[0, 0, gh, gw].backward()
    rows = (x.grad[0].abs().sum(0).sum(1) > 0).nonzero()
    assert int(rows.max() - rows.min() + 1) == rf
    assert d.output_grid(128, 128) == tuple(out.shape[2:])


def test_cycle_resnet_generator_shapes_and_refusal():
    g = CycleResNetGenerator(1, 3, (32, 32), ngf=4, n_blocks=2)
    assert g(torch.randn(2, 1, 32, 32)).shape == (2, 3, 32, 32)
    assert g(torch.randn(1, 1, 28, 44)).shape == (1, 3, 28, 44)  # non-square, sides divisible by 4
    assert sum(m.__class__.__name__ == "_ResBlock" for m in g.modules()) == 2
    with pytest.raises(UserError, match="divisible by 4"):
        CycleResNetGenerator(3, 3, (30, 32))
