import torch
from torch.testing import assert_close

from counterfeit import config
from counterfeit.nets.layers import Maxout
from counterfeit.nets.mlp import MaxoutDiscriminator, MLPGenerator, logit_of_marginals
from counterfeit.recipes import build_recipe


def test_maxout_is_the_max_over_pieces_of_each_unit():
    m = Maxout(3, units=2, pieces=4)
    x = torch.randn(5, 3)
    z = x @ m.linear.weight.T + m.linear.bias  # (5, 8): unit u owns columns 4u .. 4u+3
    want = torch.stack([z[:, 0:4].max(1).values, z[:, 4:8].max(1).values], 1)
    assert_close(m(x), want)


def test_maxout_gradient_reaches_only_the_winning_piece():
    m = Maxout(3, units=2, pieces=4)
    x = torch.randn(5, 3)
    g = torch.randn(5, 2)
    m(x).backward(g)
    z = (x @ m.linear.weight.T + m.linear.bias).detach().view(5, 2, 4)
    winner = torch.nn.functional.one_hot(z.argmax(-1), 4).float()  # (5, 2, 4)
    dz = (g.unsqueeze(-1) * winner).view(5, 8)  # the loss's gradient on the 8 affine outputs
    assert_close(m.linear.weight.grad, dz.T @ x)
    assert_close(m.linear.bias.grad, dz.sum(0))


def test_generator_and_discriminator_shapes():
    g = MLPGenerator(100, [1200, 1200], (1, 28, 28))
    d = MaxoutDiscriminator((1, 28, 28))
    x = g(torch.rand(7, 100))
    assert x.shape == (7, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
    assert d(x).shape == (7,)
    assert d.features[1].linear.weight.shape == (240 * 5, 784)


def test_paper_initialisation_ranges_and_marginal_bias(digits):
    cfg = config.load_config("gan2014-mnist")
    r = build_recipe(cfg, digits.shape, digits)
    for name, p in r.G.named_parameters():
        if name.endswith("weight"):
            assert p.abs().max() <= 0.05
    for name, p in r.D.named_parameters():
        if name.endswith("weight"):
            assert p.abs().max() <= 0.005
        else:
            assert (p == 0).all()
    # With zero pre-activation input, G outputs the data's mean image.
    assert_close(torch.sigmoid(r.G.out.bias).view(1, 28, 28), digits.pixel_marginals().clamp(1e-7, 1 - 1e-7))
    assert torch.isfinite(logit_of_marginals(torch.tensor([0.0, 1.0]))).all()


def test_dropout_keeps_the_configured_fractions():
    d = MaxoutDiscriminator((1, 28, 28), input_keep=0.8, hidden_keep=0.5)
    from counterfeit.nets.layers import Dropout

    drops = [m.p for m in d.modules() if isinstance(m, Dropout)]
    assert [round(p, 6) for p in drops] == [0.2, 0.5, 0.5]
    d.eval()
    x = torch.rand(4, 1, 28, 28)
    assert_close(d(x), d(x))  # deterministic in eval


def test_toy_generator_batchnorm_option():
    from counterfeit.nets.toy import ToyGenerator

    g = ToyGenerator(2, [16, 16], 2, "relu", batchnorm=True)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in g.modules()) == 2
    assert all(m.bias is None for m in g.net if isinstance(m, torch.nn.Linear) and m.out_features == 16)
    assert g(torch.randn(8, 2)).shape == (8, 2)


def test_toy_generator_output_scale_auto_is_the_data_std():
    from counterfeit.data import load_data
    from counterfeit.recipes import build_recipe

    cfg = config.load_config("toy2d-ema", ["data.name=toy:grid25"])
    data = load_data(cfg.data.name, cfg.data.split)
    G = build_recipe(cfg, data.shape, data).G
    assert_close(G.out_scale, data.x.std(), rtol=1e-4, atol=0)
    z = torch.randn(5, cfg.model.z_dim)
    assert_close(G(z), G.net(z) * G.out_scale)
    # a sampler rebuilds G without the data: the scale must come back from the state dict
    G2 = build_recipe(cfg, data.shape, None).G
    G2.load_state_dict(G.state_dict())
    assert_close(G2(z), G(z))


def test_dropout_drops_at_rate_p_scales_the_rest_and_is_off_in_eval():
    from counterfeit.nets.layers import Dropout

    torch.manual_seed(0)
    d = Dropout(0.3)
    x = torch.randn(200, 64, 10, 10).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = d(x)
    kept = y != 0
    n = x.numel()
    assert abs(kept.float().mean().item() - 0.7) < 4 * (0.21 / n) ** 0.5  # binomial: 4 standard deviations
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)  # the gradient flows through the kept units only
    d.eval()
    assert d(x) is x
    with torch.autocast("cpu", torch.bfloat16):  # bf16 activations, fp32 uniforms: p is exact, not rounded
        d.train()
        h = torch.randn(4000, 500).bfloat16()
        assert d(h).dtype == torch.bfloat16
        assert abs((d(h) != 0).float().mean().item() - 0.7) < 4 * (0.21 / h.numel()) ** 0.5
