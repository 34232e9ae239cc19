"""FERPlus's reference training of the ``probability`` and ``multi_target`` label modes."""

from __future__ import annotations

import math

import pytest
import torch

from fer_core.losses.ferplus import multi_target_loss, sample_labels


def test_multi_target_loss_by_hand():
    # logits (0, ln 2, 0) -> p = (1/4, 1/2, 1/4).
    # Row 0 keeps classes 0 and 2: t' = (1, 0.001, 1), max t'p = 1/4 -> ln 4.
    # Row 1 keeps class 1 only: t' = (0.001, 1, 0.001), max t'p = 1/2 -> ln 2.
    z = torch.tensor([[0.0, math.log(2), 0.0]] * 2)
    t = torch.tensor([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]])
    assert multi_target_loss(z, t).item() == pytest.approx(1.5 * math.log(2), abs=1e-6)
    # A kept class that the model already favours costs only its own probability; the
    # epsilon of a dropped class wins only when p is 1000x larger there.
    z = torch.tensor([[0.0, 10.0, 0.0]])
    p = torch.softmax(z, 1)[0]
    want = -math.log(max(p[0].item(), 0.001 * p[1].item()))
    assert multi_target_loss(z, t[:1]).item() == pytest.approx(want, rel=1e-5)


def test_multi_target_with_one_class_is_cross_entropy():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 8, generator=g)
    y = torch.tensor([0, 3, 7, 1, 1])
    t = torch.nn.functional.one_hot(y, 8).float()
    ce = torch.nn.functional.cross_entropy(z, y).item()
    # the eps terms can only lower the loss, and only by a negligible amount here
    assert multi_target_loss(z, t).item() == pytest.approx(ce, abs=1e-2)
    assert multi_target_loss(z, t, eps=0.0).item() == pytest.approx(ce, abs=1e-5)


def test_a_few_steps_lower_the_multi_target_loss():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, 8, generator=g).requires_grad_(True)
    t = torch.zeros(6, 8)
    t[:, 2], t[:3, 5] = 0.6, 0.4
    opt = torch.optim.SGD([z], lr=0.5)
    first = multi_target_loss(z, t).item()
    for _ in range(10):
        opt.zero_grad()
        multi_target_loss(z, t).backward()
        opt.step()
    assert multi_target_loss(z, t).item() < first


def test_probability_draws_a_label_per_use():
    t = torch.tensor([[0.75, 0.25, 0.0], [0.0, 0.0, 1.0]])
    g = torch.Generator().manual_seed(0)
    draws = sample_labels(t.repeat(4000, 1), g).view(4000, 2)  # 4000 uses of each sample
    assert (draws[:, 1] == 2).all()  # a one-class target is always that class
    assert set(draws[:, 0].tolist()) == {0, 1}  # never the zero-probability class
    assert (draws[:, 0] == 0).float().mean().item() == pytest.approx(0.75, abs=0.03)
    # the trial's generator makes it reproducible
    a = sample_labels(t.repeat(50, 1), torch.Generator().manual_seed(3))
    b = sample_labels(t.repeat(50, 1), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\[N, C\]"):
        multi_target_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="positive entry"):
        sample_labels(torch.zeros(2, 3))
