"""Eq. 2 of 001: the uniform loss, its precomputed optimal positions and the pull towards them."""

from __future__ import annotations

import math

import pytest
import torch

from fer_core.losses.uniform import (
    UniformLoss,
    align_rotation,
    cached_positions,
    optimal_positions,
    pull_loss,
    uniform_loss,
)


def _offdiag_cos(p: torch.Tensor) -> torch.Tensor:
    k = p.shape[0]
    return (p @ p.T)[~torch.eye(k, dtype=torch.bool)]


def _min_angle(p: torch.Tensor) -> float:
    return math.degrees(math.acos(float(_offdiag_cos(p).max())))


def test_hand_computed_value():
    # Two orthogonal unit vectors, tau = 1: each row is log(e^1 + e^0).
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert uniform_loss(t, tau=1.0).item() == pytest.approx(math.log(math.e + 1), abs=1e-6)
    # Without j = i each row is log(e^0) = 0.
    assert uniform_loss(t, tau=1.0, exclude_self=True).item() == pytest.approx(0.0, abs=1e-6)
    # Three vectors at 120 degrees, tau = 0.5: cos = -1/2 -> log(e^2 + 2 e^-1).
    a = torch.tensor(
        [[math.cos(2 * math.pi * i / 3), math.sin(2 * math.pi * i / 3)] for i in range(3)]
    )
    assert uniform_loss(3 * a, tau=0.5).item() == pytest.approx(
        math.log(math.exp(2) + 2 * math.exp(-1)), abs=1e-6
    )
    assert uniform_loss(3 * a, tau=0.5, exclude_self=True).item() == pytest.approx(
        math.log(2 * math.exp(-1)), abs=1e-6
    )


def test_paper_tau_is_stable_and_bounded_below():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 32, generator=g)
    val = UniformLoss()(t)  # tau = 0.001
    assert torch.isfinite(val) and val.item() >= 1000.0 - 1e-3


def test_paper_tau_gradient_is_round_off_with_self_and_alive_without():
    """The issue's finding, and the Done-when bound: at tau = 0.001 Eq. 2 as printed gives the
    queries no gradient, the j != i form a gradient norm above 1e-3."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(7, 128, generator=g) * 0.02  # the label decoder's initial queries
    with_self = q.clone().requires_grad_(True)
    uniform_loss(with_self, tau=0.001).backward()
    assert with_self.grad.norm() < 1e-3
    without = q.clone().requires_grad_(True)
    uniform_loss(without, tau=0.001, exclude_self=True).backward()
    assert without.grad.norm() > 1e-3
    assert without.grad.norm() > 1e3 * with_self.grad.norm()


def test_regular_tetrahedron_for_four_in_3d():
    for exclude_self in (False, True):
        p = optimal_positions(4, 3, 0.001, exclude_self=exclude_self, seed=0)
        assert p.dtype == torch.float64 and p.shape == (4, 3)
        torch.testing.assert_close(p.norm(dim=1), torch.ones(4, dtype=torch.float64))
        assert (_offdiag_cos(p) + 1 / 3).abs().max() < 1e-4


def test_simplex_when_there_is_room():
    """K <= d + 1: the regular simplex, pairwise cosine -1/(K-1) (the method's setting)."""
    p = optimal_positions(7, 32, 0.001, seed=1)
    assert (_offdiag_cos(p) + 1 / 6).abs().max() < 1e-4


def test_seven_in_3d_beat_random_unit_vectors():
    g = torch.Generator().manual_seed(0)
    rand = [
        _min_angle(torch.nn.functional.normalize(torch.randn(7, 3, generator=g), dim=1))
        for _ in range(20)
    ]
    p = optimal_positions(7, 3, 0.001, seed=0)
    assert _min_angle(p) > max(rand)
    assert _min_angle(p) > 70.0  # Tammes' bound for 7 points is 77.87 degrees


def test_tau_changes_the_positions():
    """With more classes than the sphere holds as a simplex, tau moves the optimum."""
    cos = [
        _offdiag_cos(optimal_positions(7, 3, tau, seed=0)).sort().values for tau in (0.001, 10.0)
    ]
    assert (cos[0] - cos[1]).abs().max() > 0.1


def test_positions_are_cached_per_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("FER_STUDY_CACHE", str(tmp_path))
    a = cached_positions(4, 3, 0.001, seed=0)
    assert len([p for p in (tmp_path / "uniform").iterdir() if not p.name.startswith(".")]) == 1
    torch.testing.assert_close(a, optimal_positions(4, 3, 0.001, seed=0))
    torch.testing.assert_close(cached_positions(4, 3, 0.001, seed=0), a)
    cached_positions(4, 3, 0.001, seed=1)
    cached_positions(4, 3, 0.01, seed=0)
    cached_positions(4, 3, 0.001, seed=0, exclude_self=True)
    assert len([p for p in (tmp_path / "uniform").iterdir() if not p.name.startswith(".")]) == 4


def test_rotation_alignment_and_pull():
    g = torch.Generator().manual_seed(2)
    p = optimal_positions(5, 8, 0.01, seed=0)
    rot = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64)).Q
    aligned = align_rotation(p, p @ rot)
    torch.testing.assert_close(aligned, p @ rot)  # the exact rotation is recovered
    q = (p @ rot).float() * 0.3
    assert pull_loss(q, aligned.float()).item() == pytest.approx(0.0, abs=1e-6)
    assert pull_loss(-q, aligned.float()).item() == pytest.approx(2.0, abs=1e-6)


def test_spread_beats_collapse():
    collapsed = torch.ones(4, 3)
    spread = torch.eye(4)[:, :3].clone()
    spread[3] = -1.0
    for ex in (False, True):
        assert uniform_loss(spread, 0.1, exclude_self=ex) < uniform_loss(
            collapsed, 0.1, exclude_self=ex
        )


@pytest.mark.parametrize("exclude_self", [False, True])
def test_a_few_steps_lower_the_loss(exclude_self: bool):
    g = torch.Generator().manual_seed(1)
    t = (torch.randn(7, 16, generator=g) * 0.1 + 1.0).requires_grad_(True)
    opt = torch.optim.SGD([t], lr=0.1)
    first = uniform_loss(t, tau=0.1, exclude_self=exclude_self).item()
    for _ in range(10):
        opt.zero_grad()
        uniform_loss(t, tau=0.1, exclude_self=exclude_self).backward()
        opt.step()
    assert uniform_loss(t, tau=0.1, exclude_self=exclude_self).item() < first


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="uniform.tau"):
        UniformLoss(tau=0.0)
    with pytest.raises(ValueError, match=r"\[K, d\]"):
        uniform_loss(torch.zeros(3))
    with pytest.raises(ValueError, match="exclude_self"):
        uniform_loss(torch.ones(1, 3), exclude_self=True)
    with pytest.raises(ValueError, match="k >= 2"):
        optimal_positions(1, 3)
    with pytest.raises(ValueError, match="uniform.tau"):
        optimal_positions(4, 3, tau=-1.0)
