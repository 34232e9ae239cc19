"""Mix-supervised contrastive loss (000 Eq. 11-13): hand-computed positive masks, limit cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fer_core.losses.mscl import (
    label_distance,
    mixed_targets,
    mscl_loss,
    mscl_positive_mask,
)
from fer_core.losses.supcon import supcon_loss

# four samples, labels 0 1 2 0; sample i is mixed with index[i] with weight lam[i] on itself
LABELS = torch.tensor([0, 1, 2, 0])
INDEX = torch.tensor([1, 0, 3, 2])
LAM = torch.tensor([0.7, 0.3, 0.5, 0.9])


def test_mixed_targets_by_hand():
    t = mixed_targets(LABELS, INDEX, LAM, 3)
    expected = torch.tensor(
        [
            [0.7, 0.3, 0.0],  # 0.7 * class 0 + 0.3 * class 1
            [0.7, 0.3, 0.0],  # 0.3 * class 1 + 0.7 * class 0
            [0.5, 0.0, 0.5],  # 0.5 * class 2 + 0.5 * class 0
            [0.9, 0.0, 0.1],  # 0.9 * class 0 + 0.1 * class 2
        ]
    )
    assert torch.allclose(t, expected)


def test_positive_mask_linf_by_hand():
    t = mixed_targets(LABELS, INDEX, LAM, 3)
    # linf distance = 1 - weight of the anchor's class: anchors with labels 0, 1, 2, 0
    d = label_distance(LABELS, t, "linf")
    w = torch.tensor([[0.7, 0.7, 0.5, 0.9], [0.3, 0.3, 0.0, 0.0], [0.0, 0.0, 0.5, 0.1]])
    assert torch.allclose(d, 1 - w[LABELS], atol=1e-6)
    expected = torch.tensor(
        [  # positive iff the anchor's class makes up >= 0.5 (t = 0.5; 0.5 itself counts)
            [1, 1, 1, 1],
            [0, 0, 0, 0],
            [0, 0, 1, 0],
            [1, 1, 1, 1],
        ]
    ).float()
    assert torch.equal(mscl_positive_mask(LABELS, t, 0.5, "linf"), expected)
    # t = 0.25: only mixes with >= 0.75 of the anchor's class
    tight = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]).float()
    assert torch.equal(mscl_positive_mask(LABELS, t, 0.25, "linf"), tight)


def test_positive_mask_l1_by_hand():
    t = mixed_targets(LABELS, INDEX, LAM, 3)
    # l1 distance = 2 * (1 - w): at t = 0.5 positive iff w >= 0.75
    expected = torch.tensor([[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]).float()
    assert torch.equal(mscl_positive_mask(LABELS, t, 0.5, "l1"), expected)
    assert torch.equal(mscl_positive_mask(LABELS, t, 1.0, "l1")[0], torch.ones(4))  # w >= 0.5


def test_unmixed_candidates_follow_scl_and_threshold_one_is_everything():
    one = F.one_hot(LABELS, 3).float()
    same = (LABELS[:, None] == LABELS[None, :]).float()
    assert torch.equal(mscl_positive_mask(LABELS, one, 0.5, "linf"), same)
    assert torch.equal(mscl_positive_mask(LABELS, one, 1.0, "linf"), torch.ones(4, 4))


def test_without_mixed_samples_it_is_scl():
    """Limit case: no mixed candidates -> Eq. 11 reduces to Eq. 6 over the views."""
    g = torch.Generator().manual_seed(0)
    f = F.normalize(torch.randn(6, 2, 16, generator=g), dim=-1)
    y = torch.tensor([0, 1, 2, 0, 1, 1])
    anchors = torch.cat([f[:, 0], f[:, 1]])
    loss = mscl_loss(anchors, torch.cat([y, y]), torch.zeros(0, 16), torch.zeros(0, 3))
    assert loss.item() == pytest.approx(supcon_loss(f, y).item(), abs=1e-6)


def test_a_mixed_positive_changes_the_loss_and_negatives_only_add_to_the_denominator():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    y = torch.tensor([0, 0, 1, 1])
    mixed = F.normalize(torch.randn(2, 8, generator=g), dim=-1)
    t = torch.tensor([[0.6, 0.4], [0.2, 0.8]])
    base = mscl_loss(a, y, mixed[:0], t[:0])
    with_mix = mscl_loss(a, y, mixed, t)
    assert with_mix.item() != pytest.approx(base.item())
    # hand check of anchor 0's term: positives = anchor 1 and mixed 0 (0.6 of class 0)
    logits = torch.cat([a, mixed]) @ a[0] / 0.07
    logits[0] = float("-inf")
    logp = logits - torch.logsumexp(logits, 0)
    term0 = -(logp[1] + logp[4]) / 2
    per = [term0]
    for i, pos in ((1, [0, 4]), (2, [3, 5]), (3, [2, 5])):
        lg = torch.cat([a, mixed]) @ a[i] / 0.07
        lg[i] = float("-inf")
        lp = lg - torch.logsumexp(lg, 0)
        per.append(-lp[pos].mean())
    assert with_mix.item() == pytest.approx(torch.stack(per).mean().item(), rel=1e-5)


def test_bad_settings_name_the_knob():
    t = mixed_targets(LABELS, INDEX, LAM, 3)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"mix.threshold must be in \[0, 1\]"):
            mscl_positive_mask(LABELS, t, bad)
    with pytest.raises(ValueError, match="mix.distance must be one of linf, l1"):
        mscl_positive_mask(LABELS, t, 0.5, "l2")


def test_a_few_steps_lower_it():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(8, 8, generator=g).requires_grad_(True)
    m = torch.randn(8, 8, generator=g).requires_grad_(True)
    y = torch.arange(8) % 3
    t = mixed_targets(y, torch.arange(8).roll(1), torch.full((8,), 0.7), 3)
    opt = torch.optim.SGD([a, m], lr=0.5)
    losses = []
    for _ in range(10):
        loss = mscl_loss(F.normalize(a, dim=-1), y, F.normalize(m, dim=-1), t, temperature=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1
