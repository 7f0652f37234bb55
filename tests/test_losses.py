import math

import torch
from torch.testing import assert_close

from counterfeit import losses as L


def test_losses_against_hand_computed_values():
    real = torch.tensor([2.0, -1.0])
    fake = torch.tensor([0.0, 3.0])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    # D: -mean log D(x) - mean log(1 - D(G(z)))
    want_d = -(math.log(sig(2.0)) + math.log(sig(-1.0))) / 2 - (math.log(1 - sig(0.0)) + math.log(1 - sig(3.0))) / 2
    assert_close(L.d_bce(real, fake), torch.tensor(want_d))
    # G non-saturating: -mean log D(G(z))
    assert_close(L.g_nonsat(fake), torch.tensor(-(math.log(sig(0.0)) + math.log(sig(3.0))) / 2))
    # G minimax: mean log(1 - D(G(z)))
    assert_close(L.g_minimax(fake), torch.tensor((math.log(1 - sig(0.0)) + math.log(1 - sig(3.0))) / 2))


def test_losses_are_finite_at_extreme_logits():
    extreme = torch.tensor([-1e4, 1e4], requires_grad=True)
    for value in (L.d_bce(extreme, extreme), L.g_nonsat(extreme), L.g_minimax(extreme)):
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(extreme.grad).all()
        extreme.grad = None


def test_saturating_loss_vanishes_where_non_saturating_does_not():
    # As D(G(z)) -> 0 (logit -> -inf), d/dlogit of log(1 - D) -> 0 but of -log D -> -1 (G still learns).
    for logit in (-2.0, -10.0, -30.0):
        l1 = torch.tensor([logit], requires_grad=True)
        L.g_minimax(l1).backward()
        l2 = torch.tensor([logit], requires_grad=True)
        L.g_nonsat(l2).backward()
        d = 1 / (1 + math.exp(-logit))
        assert_close(l1.grad, torch.tensor([-d]))  # -sigmoid(l) = -D(G(z))
        assert_close(l2.grad, torch.tensor([-(1 - d)]))  # -(1 - D(G(z)))
    assert abs(l1.grad.item()) < 1e-12 and abs(l2.grad.item() + 1) < 1e-12


def test_real_fake_probabilities():
    p_real, p_fake = L.d_real_fake_prob(torch.zeros(4), torch.full((4,), -100.0))
    assert p_real == 0.5 and p_fake < 1e-40
