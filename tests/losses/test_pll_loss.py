"""Eq. 1 (PLL loss), Eq. 3-4 (revision) and the RC re-weighting of 001; D1 and D2 reference values."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fer_core.losses.pll import (
    PLLLoss,
    pll_loss,
    rc_confidence,
    revise_confidence,
    uniform_confidence,
)


def _d_setup() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4, 7, generator=g)
    cand = torch.zeros(4, 7, dtype=torch.bool)
    for i, s in enumerate([(0, 3), (1, 2), (4, 6), (5, 0)]):
        cand[i, list(s)] = True
    return z, cand


def test_d1_reference_value():
    z, cand = _d_setup()
    loss = pll_loss(z, uniform_confidence(cand))
    assert loss.item() == pytest.approx(2.3417840, abs=1e-6)
    assert PLLLoss()(z, uniform_confidence(cand)).item() == pytest.approx(2.3417840, abs=1e-6)


def test_d2_reference_value():
    z, cand = _d_setup()
    conf = rc_confidence(z, cand)[0]
    expected = torch.tensor([0.333597, 0, 0, 0.666403, 0, 0, 0])
    torch.testing.assert_close(conf, expected, atol=1e-6, rtol=0)
    assert torch.allclose(rc_confidence(z, cand).sum(dim=1), torch.ones(4))


def test_singleton_sets_equal_cross_entropy():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 8, generator=g)
    y = torch.randint(0, 8, (6,), generator=g)
    conf = uniform_confidence(F.one_hot(y, 8).bool())
    assert pll_loss(z, conf).item() == pytest.approx(F.cross_entropy(z, y).item(), abs=1e-6)


def test_weights_drop_samples():
    z, cand = _d_setup()
    conf = uniform_confidence(cand)
    w = torch.tensor([1.0, 0.0, 1.0, 0.0])
    expected = pll_loss(z[[0, 2]], conf[[0, 2]])
    assert pll_loss(z, conf, w).item() == pytest.approx(expected.item(), abs=1e-6)


def test_threshold_one_never_revises():
    g = torch.Generator().manual_seed(2)
    phi = torch.rand(50, 7, generator=g)
    cand = torch.rand(50, 7, generator=g) > 0.5
    cand[:, 0] = True
    conf = uniform_confidence(cand)
    for thr in (1.0, 1.5):
        new, changed = revise_confidence(phi, conf, thr)
        assert torch.equal(new, conf) and not changed.any()
    # even with extreme responses
    new, changed = revise_confidence(torch.eye(7)[:1].repeat(50, 1), conf, 1.0)
    assert not changed.any()


def test_threshold_zero_revises_every_sample_whose_top2_differ():
    phi = torch.tensor([[0.9, 0.2, 0.5], [0.4, 0.4, 0.1], [0.3, 0.8, 0.8], [0.7, 0.1, 0.2]])
    conf = uniform_confidence(torch.tensor([[1, 1, 0], [1, 1, 0], [0, 1, 1], [1, 0, 1]]).bool())
    new, changed = revise_confidence(phi, conf, 0.0)
    assert changed.tolist() == [True, False, False, True]  # rows 1, 2: top-2 tie
    assert new[0].tolist() == [1.0, 0.0, 0.0] and new[3].tolist() == [1.0, 0.0, 0.0]
    assert torch.equal(new[1:3], conf[1:3])


def test_revision_gap_against_threshold():
    # Eq. 3-4 by hand: phi * C = [0.45, 0.15, 0] -> gap 0.3.
    phi = torch.tensor([[0.9, 0.3, 0.99]])
    conf = torch.tensor([[0.5, 0.5, 0.0]])
    assert revise_confidence(phi, conf, 0.29)[1].item()
    assert not revise_confidence(phi, conf, 0.3)[1].item()  # Delta v <= threshold keeps C
    # a revised (one-hot) row stays as it is and is not counted again
    new, changed = revise_confidence(phi, torch.tensor([[1.0, 0.0, 0.0]]), 0.0)
    assert new.tolist() == [[1.0, 0.0, 0.0]] and not changed.item()


def test_a_few_steps_lower_the_loss():
    z, cand = _d_setup()
    z = z.clone().requires_grad_(True)
    conf = uniform_confidence(cand)
    opt = torch.optim.SGD([z], lr=0.5)
    first = pll_loss(z, conf).item()
    for _ in range(5):
        opt.zero_grad()
        loss = pll_loss(z, conf)
        loss.backward()
        opt.step()
    assert pll_loss(z, conf).item() < first


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="logits and confidence"):
        pll_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="revision.threshold"):
        revise_confidence(torch.zeros(2, 3), torch.zeros(2, 3), -0.1)
    with pytest.raises(ValueError, match="same shape"):
        rc_confidence(torch.zeros(2, 3), torch.zeros(2, 4, dtype=torch.bool))
