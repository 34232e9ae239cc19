"""SimFLE's losses and masking (``losses/simfle.py``, 002 Eq. 2, 3, 5): values computed by hand
from fixed tensors, limit cases, and a few steps that lower each loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fer_core.losses.mim import mae_loss
from fer_core.losses.simfle import (
    distillation_loss,
    group_matrix,
    grouping_loss,
    patch_scores,
    semantic_masking,
)
from fer_core.models.mim import random_masking

# four channels of 1 x 2 maps, groups {0, 1} and {2, 3}: cosines c0.c1 = 1, c0.c2 = 0,
# c0.c3 = c1.c3 = c2.c3 = 1/sqrt(2)
ACT = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).view(1, 4, 1, 2)


def test_group_matrix_is_block_diagonal():
    g = group_matrix(4, 2)
    assert torch.equal(g, torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1.0]]))
    with pytest.raises(ValueError, match="ffl.groups"):
        group_matrix(6, 4)


def test_grouping_loss_paper_form_eq2_by_hand():
    # across groups: 2 * (0 + 1/2 + 0 + 1/2) = 2; within: 4 * 1 + (1 + 1/2 + 1/2 + 1) = 7
    assert grouping_loss(ACT, 2, "paper").item() == pytest.approx((2 - 7) / 16, abs=1e-6)


def test_grouping_loss_code_form_by_hand():
    # sum (D - G)^2: 2 across groups, 2 (1 - 1/sqrt(2))^2 within; * 0.001 / (4 / 512)^2, squared
    inner = 0.001 * (2 + 2 * (1 - math.sqrt(0.5)) ** 2) / (4 / 512) ** 2
    assert grouping_loss(ACT, 2, "code").item() == pytest.approx(inner**2, rel=1e-5)


def test_grouping_loss_limit_perfect_groups():
    # identical maps within a group, orthogonal across: code form 0, paper form -1 / N_g
    act = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 1.0]]).view(1, 4, 1, 2)
    assert grouping_loss(act, 2, "code").item() == pytest.approx(0.0, abs=1e-10)
    assert grouping_loss(act, 2, "paper").item() == pytest.approx(-0.5, abs=1e-6)
    with pytest.raises(ValueError, match="grouping_form"):
        grouping_loss(act, 2, "squared")


@pytest.mark.parametrize("form", ["paper", "code"])
def test_grouping_loss_a_few_steps_lower_it(form):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # the conv's init (else it depends on the tests that ran before)
    conv = torch.nn.Conv2d(8, 8, 1)
    x = torch.rand(4, 8, 3, 3, generator=g)
    opt = torch.optim.SGD(conv.parameters(), lr=0.05 if form == "paper" else 1e-4)
    first = grouping_loss(F.relu(conv(x)), 4, form).item()
    for _ in range(5):
        loss = grouping_loss(F.relu(conv(x)), 4, form)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert grouping_loss(F.relu(conv(x)), 4, form).item() < first


def test_patch_scores_eq3_by_hand():
    # bilinear 2 -> 4 then 2 x 2 means: 1-D [a, b] -> [7a + b, a + 7b] / 8, separably
    m = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    assert torch.allclose(patch_scores(m, 4, 2), torch.tensor([[1.375, 2.125, 2.875, 3.625]]))
    with pytest.raises(ValueError, match="ffl.patch"):
        patch_scores(m, 6, 4)


def test_semantic_masking_ascending_masks_the_lowest_scores():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    keep, mask, restore = semantic_masking(scores, 0.5, "ascending")
    assert keep.tolist() == [[1, 2]] and mask.tolist() == [[1, 0, 0, 1]]
    keep, mask, restore = semantic_masking(scores, 0.5, "descending")
    assert keep.tolist() == [[0, 3]] and mask.tolist() == [[0, 1, 1, 0]]
    # the same contract as MAE's random masking: restore undoes the shuffle
    _, rmask, _ = random_masking(1, 4, 0.5)
    assert mask.sum() == rmask.sum() == 2
    with pytest.raises(ValueError, match="ffl.mask_order"):
        semantic_masking(scores, 0.5, "middle")
    with pytest.raises(ValueError, match="ffl.mask_ratio"):
        semantic_masking(scores, 0.9, "ascending")


def test_distillation_loss_eq5_by_hand():
    # z_bar = 0: target uniform; z_v1 / t = [1, 0], z_v2 / t = [-1, 0], z_m = z_bar
    zs = [torch.tensor([[0.0, 0.0]]), torch.tensor([[4.0, 0.0]]), torch.tensor([[-4.0, 0.0]])]
    s = 1 / (1 + math.exp(-1))  # softmax([1, 0])[0]
    kl = -math.log(2) - 0.5 * (math.log(s) + math.log(1 - s))  # KL(uniform || [s, 1 - s])
    assert distillation_loss(zs, 4.0).item() == pytest.approx(2 * 16 * kl, rel=1e-5)


def test_distillation_loss_limits_and_detach():
    z = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    assert distillation_loss([z, z.clone(), z.clone()]).item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="N, D"):
        distillation_loss([z, z[:2]])
    grads = []
    for detach in (True, False):
        zs = [torch.randn(3, 5, generator=torch.Generator().manual_seed(i)) for i in range(3)]
        zs = [x.requires_grad_() for x in zs]
        distillation_loss(zs, 4.0, detach_mean=detach).backward()
        grads.append(zs[0].grad.clone())
    # in this KL direction the mean's path carries no gradient: sum_i log psi(z_i / t) is
    # 3 z_bar / t minus constants, which the softmax Jacobian annihilates (docstring)
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_distillation_loss_a_few_steps_lower_it():
    g = torch.Generator().manual_seed(1)
    zs = [torch.randn(4, 6, generator=g).requires_grad_() for _ in range(3)]
    opt = torch.optim.SGD(zs, lr=0.5)
    first = distillation_loss(zs).item()
    for _ in range(10):
        loss = distillation_loss(zs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert distillation_loss(zs).item() < first


def test_reconstruction_is_maes_masked_mse_on_the_semantic_mask():
    # Eq. 4: only the masked patches count (losses/mim.mae_loss reused)
    imgs = torch.arange(16.0).view(1, 1, 4, 4)
    _, mask, _ = semantic_masking(torch.tensor([[0.0, 1.0, 2.0, 3.0]]), 0.5)  # masks 0 and 1
    pred = torch.zeros(1, 4, 4)
    per = torch.tensor([[0, 1, 4, 5], [2, 3, 6, 7.0]]).pow(2).mean(1)  # patches 0 and 1
    assert mae_loss(imgs, pred, mask, 2, norm_pix_loss=False).item() == pytest.approx(
        per.mean().item()
    )
