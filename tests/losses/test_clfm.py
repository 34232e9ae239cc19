"""CLFM (003 Eq. 2-6, 12) and the seeded k-means: hand values, limit cases, a few steps."""

from __future__ import annotations

import math

import pytest
import torch

from fer_core.losses.clfm import (
    assign_groups,
    class_centroids,
    clfm_loss,
    deep_centroids,
    group_means,
    vec_cosine,
)
from fer_core.losses.kmeans import check_k, kmeans

PHI = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # two deep centroids, d = 2
# one sample, three channel codes: cos to PHI -> groups 0, 1, 1 (1.1 / sqrt(2.21) > 1 / sqrt(2.21))
G = torch.tensor([[[2.0, 0.0], [0.0, 3.0], [1.0, 1.1]]])


def test_eq3_5_groups_and_shallow_centres_by_hand():
    assert assign_groups(G, PHI).tolist() == [[0, 1, 1]]
    centres = group_means(G, PHI)
    assert torch.allclose(centres, torch.tensor([[[2.0, 0.0], [0.5, 2.05]]]))


def test_eq6_cosine_of_the_vectorised_centres_by_hand():
    # vec(I) = (2, 0, 0.5, 2.05), vec(phi) = (1, 0, 0, 1)
    want = (2 + 2.05) / (math.sqrt(4 + 0.25 + 2.05**2) * math.sqrt(2))
    assert vec_cosine(group_means(G, PHI), PHI).item() == pytest.approx(want, abs=1e-6)
    loss, cos = clfm_loss([G, G * 0 + 1], PHI, [0.5, 0.0])
    assert loss.item() == pytest.approx(-0.5 * want, abs=1e-6)  # alpha_2 = 0: no term
    # block 2: all-ones codes go to centroid 0 (tie -> first), centre (1, 1), cos = 1 / 2
    assert cos.tolist() == pytest.approx([want, 0.5], abs=1e-6)


def test_an_empty_group_is_zero_and_aligned_centres_give_minus_alpha():
    centres = group_means(torch.tensor([[[3.0, 0.1]]]), PHI)
    assert centres[0, 1].tolist() == [0.0, 0.0]
    # shallow codes equal to the centroids: cos = 1, loss = -sum(alpha)
    loss, _ = clfm_loss([PHI[None], PHI[None]], PHI, [0.2, 0.3])
    assert loss.item() == pytest.approx(-0.5, abs=1e-6)


def test_kmeans_by_hand_and_seeded():
    pts = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    c, a = kmeans(pts, 2, generator=torch.Generator().manual_seed(0))
    assert sorted(c.flatten().tolist()) == [0.5, 10.5]
    assert a[0] == a[1] and a[2] == a[3] and a[0] != a[2]
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(1))
    r1 = kmeans(x, 4, generator=torch.Generator().manual_seed(5))
    r2 = kmeans(x, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(r1[0], r2[0]) and torch.equal(r1[1], r2[1])
    assert r1[0].device == x.device


def test_kmeans_recovers_separated_blobs():
    g = torch.Generator().manual_seed(2)
    centres = torch.tensor([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0], [0.0, 8.0, 0.0], [0.0, 0.0, 8.0]])
    x = (centres[:, None] + 0.5 * torch.randn(4, 30, 3, generator=g)).reshape(-1, 3)
    c, ours = kmeans(x, 4, generator=torch.Generator().manual_seed(0))
    truth = torch.arange(4).repeat_interleave(30)
    assert len(set(zip(ours.tolist(), truth.tolist()))) == 4  # the blobs, up to renaming
    for k in range(4):  # each centroid is the mean of its members (Eq. 2, second line)
        assert torch.allclose(c[k], x[ours == k].mean(0), atol=1e-5)


def test_eq2_centroids_carry_gradient_unless_detached():
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(3), requires_grad=True)
    c = deep_centroids(x, 3, generator=torch.Generator().manual_seed(0))
    c.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    d = deep_centroids(x, 3, generator=torch.Generator().manual_seed(0), detach=True)
    assert not d.requires_grad and torch.allclose(c.detach(), d, atol=1e-5)


def test_eq12_class_centres_by_hand():
    g = torch.tensor([[[1.0, 0.0], [3.0, 0.0]], [[0.0, 2.0], [0.0, 4.0]], [[5.0, 5.0], [7.0, 7.0]]])
    y = torch.tensor([2, 0, -1])  # the unlabelled sample is left out
    c = class_centroids(g, y)
    assert c.tolist() == [[0.0, 3.0], [2.0, 0.0]]
    with pytest.raises(ValueError, match="class_center"):
        class_centroids(g, torch.tensor([-1, -1, -1]))


def test_a_few_steps_lower_the_loss():
    g0 = torch.randn(4, 8, 16, generator=torch.Generator().manual_seed(4))
    deep = torch.randn(4, 12, 16, generator=torch.Generator().manual_seed(5))
    phi = deep_centroids(deep.reshape(-1, 16), 4, generator=torch.Generator().manual_seed(0))
    g = g0.clone().requires_grad_(True)
    opt = torch.optim.SGD([g], lr=1.0)
    first = None
    for _ in range(20):
        loss, _ = clfm_loss([g], phi, [1.0])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert clfm_loss([g], phi, [1.0])[0].item() < first - 0.05


@pytest.mark.parametrize("bad", [1, 0, 2.5, True, "4"])
def test_k_below_two_names_the_knob(bad):
    with pytest.raises(ValueError, match="clfm.k .*integer >= 2"):
        check_k("clfm.k", bad)
