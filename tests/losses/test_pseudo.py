"""SSFER's pseudo-label loss (004 Eq. 3-5) and the EMA update (Eq. 1): hand values, limit cases."""

from __future__ import annotations

import math

import pytest
import torch

from fer_core.losses.pseudo import check_unit, ema_update_, pseudo_labels, unlabelled_loss


def test_threshold_is_strict():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    y_hat, mask = pseudo_labels(probs, 0.7)
    assert y_hat.tolist() == [0, 1, 2] and mask.tolist() == [False, True, False]  # 0.7 is not > 0.7


def test_hand_value_averages_over_all_unlabelled_samples():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y_hat, mask = torch.tensor([0, 0, 1]), torch.tensor([True, True, False])
    # CE row 0: log(1 + e^-2); row 1: log(1 + e^1); row 2 masked; Eq. 4 divides by N_U = 3
    want = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 3
    assert float(unlabelled_loss(logits, y_hat, mask)) == pytest.approx(want, abs=1e-6)
    assert float(unlabelled_loss(logits, y_hat, torch.zeros(3, dtype=torch.bool))) == 0.0
    assert float(unlabelled_loss(logits[:0], y_hat[:0], mask[:0])) == 0.0


def test_ema_update_limits_and_hand_value():
    t, s = [torch.tensor([1.0, 2.0])], [torch.tensor([3.0, 6.0])]
    ema_update_(t, s, 0.75)
    assert t[0].tolist() == [1.5, 3.0]  # 0.75 * t + 0.25 * s
    ema_update_(t, s, 1.0)
    assert t[0].tolist() == [1.5, 3.0]  # m = 1: a frozen teacher
    ema_update_(t, s, 0.0)
    assert t[0].tolist() == [3.0, 6.0]  # m = 0: the teacher is the student (FixMatch)


def test_a_few_steps_of_the_pseudo_label_loss_lower_it():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 4, generator=g, requires_grad=True)
    y_hat, mask = torch.randint(0, 4, (16,), generator=g), torch.rand(16, generator=g) > 0.3
    first = float(unlabelled_loss(logits, y_hat, mask))
    opt = torch.optim.SGD([logits], lr=1.0)
    for _ in range(5):
        opt.zero_grad()
        unlabelled_loss(logits, y_hat, mask).backward()
        opt.step()
    assert float(unlabelled_loss(logits, y_hat, mask)) < first


@pytest.mark.parametrize("bad", [-0.01, 1.01, "0.5", True, None])
def test_unit_check_names_the_knob(bad):
    with pytest.raises(ValueError, match=r"conf_threshold must be a number in \[0, 1\]"):
        check_unit("conf_threshold", bad)
