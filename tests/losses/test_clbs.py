"""CLBS (003 Eq. 7): hand values, the batch-size check, a few steps."""

from __future__ import annotations

import math

import pytest
import torch

from fer_core.losses.clbs import check_batch, clbs_loss
from fer_core.losses.clfm import deep_centroids

PSI = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
H = torch.tensor([[2.0, 1.0], [1.0, -2.0], [3.0, 2.0]])  # groups 0, 1, 0 by cosine


def test_eq7_by_hand():
    # H_j = [(2.5, 1.5), (1, -2)]; vec(psi) = (1, 1, 1, -1)
    want = (2.5 + 1.5 + 1 + 2) / (math.sqrt(2.5**2 + 1.5**2 + 1 + 4) * 2)
    loss, cos = clbs_loss([H, H], PSI, [0.1, 0.0])
    assert cos.tolist() == pytest.approx([want, want], abs=1e-6)
    assert loss.item() == pytest.approx(-0.1 * want, abs=1e-6)


def test_an_empty_cluster_adds_zeros_to_the_vector():
    psi = torch.cat([PSI, torch.tensor([[-1.0, 0.0]])])  # nothing is closest to (-1, 0)
    want = 7 / (math.sqrt(13.5) * math.sqrt(5))
    assert clbs_loss([H], psi, [1.0])[1].item() == pytest.approx(want, abs=1e-6)


def test_a_few_steps_lower_the_loss():
    h = torch.randn(32, 8, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    deep = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    psi = deep_centroids(deep, 7, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD([h], lr=2.0)
    first = clbs_loss([h], psi, [1.0])[0].item()
    for _ in range(20):
        loss, _ = clbs_loss([h], psi, [1.0])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert clbs_loss([h], psi, [1.0])[0].item() < first - 0.05


def test_k_larger_than_the_batch_names_both_knobs():
    check_batch(7, 7)
    with pytest.raises(ValueError, match="clbs.k=8 .*trainer.batch_size=4"):
        check_batch(8, 4)


def test_wrong_number_of_weights():
    with pytest.raises(ValueError, match="beta"):
        clbs_loss([H, H], PSI, [0.1])
