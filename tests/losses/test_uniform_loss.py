"""Eq. 2 of 001: the uniform loss on the class query embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from fer_core.losses.uniform import UniformLoss, uniform_loss


def test_hand_computed_value():
    # Two orthogonal unit vectors, tau = 1: each row is log(e^1 + e^0).
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert uniform_loss(t, tau=1.0).item() == pytest.approx(math.log(math.e + 1), abs=1e-6)
    # Three vectors at 120 degrees, tau = 0.5: cos = -1/2 -> log(e^2 + 2 e^-1).
    a = torch.tensor(
        [[math.cos(2 * math.pi * i / 3), math.sin(2 * math.pi * i / 3)] for i in range(3)]
    )
    assert uniform_loss(3 * a, tau=0.5).item() == pytest.approx(
        math.log(math.exp(2) + 2 * math.exp(-1)), abs=1e-6
    )


def test_paper_tau_is_stable_and_bounded_below():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 32, generator=g)
    val = UniformLoss()(t)  # tau = 0.001
    assert torch.isfinite(val) and val.item() >= 1000.0 - 1e-3


def test_subtract_self_only_removes_the_constant():
    g = torch.Generator().manual_seed(3)
    t = torch.randn(7, 16, generator=g)
    for tau in (0.001, 0.1):
        full = uniform_loss(t, tau=tau)
        assert uniform_loss(t, tau=tau, subtract_self=True).item() == pytest.approx(
            full.item() - 1 / tau, abs=1e-4
        )
    a = t.clone().requires_grad_(True)
    b = t.clone().requires_grad_(True)
    uniform_loss(a, tau=0.1).backward()
    uniform_loss(b, tau=0.1, subtract_self=True).backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_spread_beats_collapse():
    collapsed = torch.ones(4, 3)
    spread = torch.eye(4)[:, :3].clone()
    spread[3] = -1.0
    assert uniform_loss(spread, tau=0.1) < uniform_loss(collapsed, tau=0.1)


def test_a_few_steps_lower_the_loss():
    g = torch.Generator().manual_seed(1)
    t = (torch.randn(7, 16, generator=g) * 0.1 + 1.0).requires_grad_(True)
    opt = torch.optim.SGD([t], lr=0.1)
    first = uniform_loss(t, tau=0.1).item()
    for _ in range(10):
        opt.zero_grad()
        uniform_loss(t, tau=0.1).backward()
        opt.step()
    assert uniform_loss(t, tau=0.1).item() < first


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="uniform.tau"):
        UniformLoss(tau=0.0)
    with pytest.raises(ValueError, match=r"\[K, d\]"):
        uniform_loss(torch.zeros(3))
