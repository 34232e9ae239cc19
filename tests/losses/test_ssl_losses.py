"""The self-supervised losses of 002's baselines (``losses/ssl.py``): values computed by hand from
fixed tensors, limit cases, lightly's NTXentLoss with a memory bank as MoCo's reference, the
momentum rules and the key queue."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fer_core.losses.ssl import (
    KeyQueue,
    byol_loss,
    check_ema,
    ema_momentum,
    moco_infonce,
    nt_xent,
    simsiam_loss,
    update_target,
)

P = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
Z = torch.tensor([[1.0, 1.0], [0.0, -2.0]])  # cosines with P: 1/sqrt(2) and -1


def test_byol_loss_eq1_by_hand():
    # (2 - 2/sqrt(2) + 2 - 2 * (-1)) / 2
    assert byol_loss(P, Z).item() == pytest.approx((2 - math.sqrt(2) + 4) / 2, abs=1e-6)


def test_byol_loss_limits_and_scale_invariance():
    x = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    assert byol_loss(x, 3 * x).item() == pytest.approx(0.0, abs=1e-6)  # same direction
    assert byol_loss(x, -x).item() == pytest.approx(4.0, abs=1e-6)  # opposite
    # Eq. 1 is the MSE of the L2-normalised vectors (summed over D)
    y = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    mse = (F.normalize(x, dim=1) - F.normalize(y, dim=1)).pow(2).sum(1).mean()
    assert byol_loss(x, y).item() == pytest.approx(mse.item(), abs=1e-6)


def test_simsiam_loss_by_hand_and_stop_gradient():
    p2 = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    z1 = torch.tensor([[3.0, 4.0], [0.0, 1.0]], requires_grad=True)  # cosines with p2: 1, 0
    z2 = Z.clone().requires_grad_(True)
    loss = simsiam_loss(P, p2, z1, z2)
    # 0.5 * -(1/sqrt(2) - 1) / 2 + 0.5 * -(1 + 0) / 2
    assert loss.item() == pytest.approx(0.5 * (1 - 1 / math.sqrt(2)) / 2 - 0.25, abs=1e-6)
    p = P.clone().requires_grad_(True)
    simsiam_loss(p, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None and p.grad is not None  # sg(z)


def test_moco_infonce_by_hand():
    q, k = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    queue = torch.tensor([[0.0, 1.0], [-3.0, 0.0]])  # cosines with q: 0 and -1
    t = 0.5
    # -log(e^(1/T) / (e^(1/T) + e^0 + e^(-1/T)))
    want = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(-2)))
    assert moco_infonce(q, k, queue, t).item() == pytest.approx(want, abs=1e-6)


def test_moco_infonce_equals_lightly_ntxent_with_the_same_memory_bank():
    from lightly.loss import NTXentLoss

    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(6, 16, generator=g), torch.randn(6, 16, generator=g)
    queue = F.normalize(torch.randn(40, 16, generator=g), dim=1)
    ref = NTXentLoss(temperature=0.2, memory_bank_size=(40, 16))
    ref.memory_bank.bank = queue.clone()
    want = ref(q, k)  # no gradient on q: lightly does not update its bank
    assert moco_infonce(q, k, queue, 0.2).item() == pytest.approx(want.item(), abs=1e-5)


def test_nt_xent_by_hand():
    z = torch.eye(2)  # each view's positive has cosine 1, its 2 negatives cosine 0
    for t in (1.0, 0.5):
        want = math.log(1 + 2 * math.exp(-1 / t))  # -log(e^(1/T) / (e^(1/T) + 2 e^0))
        assert nt_xent(z, z.clone(), t).item() == pytest.approx(want, abs=1e-6)


def test_nt_xent_matches_its_formula_on_random_views():
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / 0.3
    sim.fill_diagonal_(-float("inf"))
    pos = torch.cat([torch.arange(5, 10), torch.arange(0, 5)])
    want = F.cross_entropy(sim, pos)
    assert nt_xent(z1, z2, 0.3).item() == pytest.approx(want.item(), abs=1e-5)


def test_a_few_steps_lower_each_loss():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, generator=g)
    target = torch.randn(8, 4, generator=g)
    queue = torch.randn(16, 4, generator=g)
    losses = {
        "byol": lambda p: byol_loss(p, target),
        "simsiam": lambda p: simsiam_loss(p, p, target, target),
        "moco": lambda p: moco_infonce(p, target, queue, 0.2),
        "simclr": lambda p: nt_xent(p, target, 0.2),
    }
    for name, fn in losses.items():
        p = x.clone().requires_grad_(True)
        opt = torch.optim.SGD([p], lr=0.5)
        first = fn(p).item()
        for _ in range(5):
            opt.zero_grad()
            fn(p).backward()
            opt.step()
        assert fn(p).item() < first, name


def test_ema_momentum_constant_and_cosine_by_hand():
    assert ema_momentum(0.99, "constant", 7, 10) == 0.99
    # 1 - (1 - 0.996) (cos(pi k / (K - 1)) + 1) / 2 with K = 11
    assert ema_momentum(0.996, "cosine", 0, 11) == pytest.approx(0.996, abs=1e-12)
    assert ema_momentum(0.996, "cosine", 5, 11) == pytest.approx(0.998, abs=1e-12)
    assert ema_momentum(0.996, "cosine", 10, 11) == pytest.approx(1.0, abs=1e-12)


def test_update_target_is_rho_tau_plus_theta():
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    nn.init.constant_(online.weight, 1.0)
    nn.init.constant_(target.weight, 0.0)
    update_target(online, target, 0.99)
    assert torch.allclose(target.weight, torch.full((1, 2), 0.01))


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.9", None])
def test_check_ema_names_the_knob(bad):
    with pytest.raises(ValueError, match=r"method\.gfl\.ema="):
        check_ema(bad, "constant")


def test_check_ema_schedule_names_the_knob():
    assert check_ema(1, "cosine") == (1.0, "cosine")  # both ends of [0, 1] are allowed
    with pytest.raises(ValueError, match=r"ema_schedule='linear'.*constant, cosine"):
        check_ema(0.99, "linear")


def test_key_queue_wraps_without_dropping_keys():
    torch.manual_seed(0)
    q = KeyQueue(5, 2)
    assert torch.allclose(q.keys.norm(dim=1), torch.ones(5))
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    b = torch.tensor([[0.0, -1.0], [-1.0, 0.0], [0.0, 5.0]])
    q.push(a)
    q.push(b)  # a batch of 3 into a queue of 5: rows 3, 4, then 0 (not a multiple: no drop)
    want = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]])
    assert torch.equal(q.keys, want) and int(q.ptr) == 1
    assert set(q.state_dict()) == {"keys", "ptr"}  # checkpointed: a resume keeps the queue
    q.push(torch.arange(14.0).view(7, 2) + 1)  # larger than the queue: its last 5 keys
    assert torch.allclose(q.keys[1], F.normalize(torch.tensor([[5.0, 6.0]]), dim=1)[0])


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_key_queue_size_names_the_knob(bad):
    with pytest.raises(ValueError, match=r"method\.queue_size="):
        KeyQueue(bad, 4)
