"""Supervised contrastive loss (000 Eq. 6): reference values A1-A3, limit cases, a few steps."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fer_core.losses.supcon import SupConLoss, contrastive_loss, supcon_loss


def _a_features() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return F.normalize(torch.randn(8, 2, 128, generator=g), dim=-1)


Y = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])


def test_reference_value_a1():
    assert supcon_loss(_a_features(), Y).item() == pytest.approx(3.0626636, abs=1e-6)


def test_reference_value_a2_temperature_differs_from_base():
    loss = supcon_loss(_a_features(), Y, temperature=0.1, base_temperature=0.07)
    assert loss.item() == pytest.approx(4.0477743, abs=1e-6)


def test_reference_value_a3_one_view_and_an_anchor_without_positives():
    y = torch.tensor([0, 1, 2, 0, 1, 2, 3, 4])
    assert supcon_loss(_a_features()[:, :1], y).item() == pytest.approx(1.6538571, abs=1e-6)


def test_an_explicit_positive_mask_equals_labels():
    f = _a_features()
    mask = (Y[:, None] == Y[None, :]).float()
    assert torch.allclose(supcon_loss(f, mask=mask), supcon_loss(f, Y), atol=1e-7)
    # the module normalises first: same value on unnormalised features
    assert torch.allclose(SupConLoss()(3 * f, Y), supcon_loss(f, Y), atol=1e-6)


def test_without_labels_it_is_simclr_nt_xent():
    """Limit case: no labels -> each anchor's only positive is its other view (Eq. 5)."""
    f = _a_features()
    z = torch.cat([f[:, 0], f[:, 1]])  # [16, D]
    logits = (z @ z.T / 0.07).fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(8, 16), torch.arange(8)])
    assert torch.allclose(supcon_loss(f), F.cross_entropy(logits, target), atol=1e-5)


def test_anchors_without_positives_contribute_zero_and_count():
    f = _a_features()[:, :1]
    assert supcon_loss(f, torch.arange(8)).item() == 0.0
    # half of the anchors have a positive: the mean is over all anchors
    z = f[:, 0]
    pos = torch.zeros(8, 8)
    pos[0, 1] = pos[1, 0] = 1.0
    eye = torch.eye(8, dtype=torch.bool)
    full = contrastive_loss(z, z, pos, eye)
    two = contrastive_loss(z[:2], z, pos[:2], eye[:2])
    assert full.item() == pytest.approx(two.item() * 2 / 8, rel=1e-5)


def test_bad_settings_name_the_knob():
    f = _a_features()
    with pytest.raises(ValueError, match="tau"):
        supcon_loss(f, Y, temperature=0.0)
    with pytest.raises(ValueError, match="base_tau"):
        SupConLoss(base_temperature=-1.0)
    with pytest.raises(ValueError, match=r"\[N, V, D\]"):
        supcon_loss(f[:, 0], Y)
    with pytest.raises(ValueError, match="batch size >= 2"):
        supcon_loss(f[:1, :1], Y[:1])  # one sample, one view: nothing to contrast with


def test_a_few_steps_lower_it():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 2, 8, generator=g).requires_grad_(True)
    y = torch.arange(16) % 4
    opt = torch.optim.SGD([x], lr=0.5)
    losses = []
    for _ in range(10):
        loss = supcon_loss(F.normalize(x, dim=-1), y, temperature=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1
