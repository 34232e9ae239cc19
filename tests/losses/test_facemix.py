"""FaceMix (004 Eq. 6-14): hand values of L1-L4, kappa metrics, reference value G, no in-place mixing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fer_core.losses.facemix import (
    PSNR_CAP_DB,
    check_alpha,
    check_kappa,
    check_loss_form,
    compute_kappa,
    facemix_loss,
    fsim_kappa,
    iou_kappa,
    psnr_kappa,
    ssim_kappa,
)
from fer_core.methods.mixing import mix_batch

# Two samples, two classes, partners swapped, lam = 1/2:
#   mixed predictions p = [3/4, 1/4] and [1/2, 1/2]; mixed targets [1/2, 1/2] for both;
#   real predictions [4/5, 1/5] (label 0) and [1/2, 1/2] (label 1).
LOGITS_MIX = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
LOGITS_REAL = torch.tensor([[math.log(4.0), 0.0], [0.0, 0.0]])
LABELS = torch.tensor([0, 1])
INDEX = torch.tensor([1, 0])
KAPPA = torch.tensor([0.2, 0.6])
LV = [-(0.5 * math.log(0.75) + 0.5 * math.log(0.25)), math.log(2.0)]  # Eq. 7 per pair
REAL = -math.log(0.8) + math.log(2.0)  # L_i + L_j, the same for both pairs (partners swapped)


def _hand(form: str) -> float:
    out = []
    for lv, k in zip(LV, KAPPA.tolist()):
        out.append(
            {
                "L1": (1 - k) * lv + REAL,  # Eq. 11
                "L2": lv + (1 - k) * REAL,  # Eq. 12
                "L3": k * lv + REAL,  # Eq. 13
                "L4": lv + k * REAL,  # Eq. 14
            }[form]
        )
    return sum(out) / len(out)


@pytest.mark.parametrize(
    "form, value",
    [("L1", 1.3897155), ("L2", 1.3148421), ("L3", 1.2079337), ("L4", 1.1315840)],
)
def test_loss_forms_hand_values(form: str, value: float) -> None:
    assert _hand(form) == pytest.approx(value, abs=1e-6)  # the hand arithmetic, written out
    loss, logs = facemix_loss(LOGITS_MIX, LOGITS_REAL, LABELS, INDEX, 0.5, KAPPA, form)
    assert float(loss) == pytest.approx(value, abs=1e-6)
    assert float(logs["v"]) == pytest.approx(sum(LV) / 2, abs=1e-6)
    assert float(logs["real"]) == pytest.approx(REAL, abs=1e-6)
    assert float(logs["kappa"]) == pytest.approx(0.4, abs=1e-6)


def test_limit_cases() -> None:
    # kappa = 0 with L4: plain Mixup (soft-target CE on the mixes only)
    lam = torch.tensor([0.3, 0.9])
    loss, _ = facemix_loss(LOGITS_MIX, LOGITS_REAL, LABELS, INDEX, lam, torch.zeros(2), "L4")
    target = lam[:, None] * F.one_hot(LABELS, 2) + (1 - lam[:, None]) * F.one_hot(LABELS[INDEX], 2)
    ref = -(target * F.log_softmax(LOGITS_MIX, 1)).sum(1).mean()
    assert float(loss) == pytest.approx(float(ref), abs=1e-7)
    # lam = 1, partner = itself, kappa = 1: L4 = CE(mix) + 2 CE(real)
    same = torch.arange(2)
    loss, _ = facemix_loss(LOGITS_MIX, LOGITS_REAL, LABELS, same, 1.0, torch.ones(2), "L4")
    ce = F.cross_entropy(LOGITS_MIX, LABELS) + 2 * F.cross_entropy(LOGITS_REAL, LABELS)
    assert float(loss) == pytest.approx(float(ce), abs=1e-6)


def test_reference_value_g() -> None:
    k = iou_kappa(torch.tensor([[25.0, 25, 220, 220]]), torch.tensor([[40.0, 30, 200, 210]]))
    assert 1.0 - float(k[0]) == pytest.approx(0.7573964, abs=1e-6)


def test_kappa_metrics() -> None:
    zero, grey = torch.zeros(2, 1, 16, 16), torch.full((2, 1, 16, 16), 0.1)
    # PSNR: MSE 0.01 -> 20 dB -> kappa = 1 - 20/40; identical images -> 0
    assert torch.allclose(psnr_kappa(zero, grey), torch.full((2,), 1 - 20 / PSNR_CAP_DB))
    assert torch.allclose(psnr_kappa(grey, grey), torch.zeros(2))
    # SSIM of two constant images is the luminance term (2 mx my + C1) / (mx^2 + my^2 + C1)
    a, b = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), 0.6)
    c1 = 0.01**2
    ssim = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    # (float32 variances of a constant image are not exactly 0: 1e-4 tolerance)
    assert float(ssim_kappa(a, b)[0]) == pytest.approx(1 - ssim, abs=1e-4)
    assert float(ssim_kappa(a, a)[0]) == pytest.approx(0.0, abs=1e-6)
    # FSIM: identical -> 0; more noise -> larger kappa; 1 and 3 channels
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    noise = torch.rand(2, 3, 32, 32, generator=g)
    near, far = (0.9 * x + 0.1 * noise), (0.3 * x + 0.7 * noise)
    assert torch.allclose(fsim_kappa(x, x), torch.zeros(2), atol=1e-5)
    assert bool((fsim_kappa(x, near) < fsim_kappa(x, far)).all())
    k1 = fsim_kappa(x[:, :1], far[:, :1])
    assert bool(((k1 > 0) & (k1 <= 1)).all())
    assert torch.equal(compute_kappa("none", n=3), torch.ones(3))
    with pytest.raises(ValueError, match="needs the face boxes"):
        compute_kappa("iou", x_i=x, x_j=x)


def test_bad_settings_name_the_knob() -> None:
    with pytest.raises(
        ValueError, match=r"facemix.kappa must be one of iou, psnr, ssim, fsim, none, got 'lpips'"
    ):
        check_kappa("lpips")
    with pytest.raises(ValueError, match=r"facemix.loss must be one of L1, L2, L3, L4.*'L5'"):
        check_loss_form("L5")
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="facemix.alpha must be a number > 0"):
            check_alpha(bad)


def test_unmixed_inputs_unchanged() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g)
    boxes = torch.tensor([[0.0, 0, 4, 4], [1, 1, 6, 6], [0, 0, 8, 8]]).repeat(2, 1)
    x0, b0 = x.clone(), boxes.clone()
    mix = mix_batch(x, g, kind="mixup", alpha=1.0, beta=1.0, boxes=boxes)
    assert torch.equal(x, x0) and torch.equal(boxes, b0)
    assert not torch.equal(mix.images, x)
    kappa = compute_kappa("iou", boxes_i=mix.boxes, boxes_j=mix.partner_boxes)
    assert torch.allclose(kappa, iou_kappa(boxes, boxes[mix.index]))
    w = torch.randn(64, 3, generator=g, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    logits_real = x.flatten(1) @ w
    lr0 = logits_real.detach().clone()
    facemix_loss(mix.images.flatten(1) @ w, logits_real, labels, mix.index, mix.lam, kappa)
    assert torch.equal(x, x0) and torch.equal(logits_real.detach(), lr0)


def test_a_few_steps_lower_it() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 10, generator=g)
    y = torch.randint(0, 3, (16,), generator=g)
    lin = torch.nn.Linear(10, 3)
    opt = torch.optim.SGD(lin.parameters(), lr=0.5)
    index = torch.randperm(16, generator=g)
    lam = torch.full((16,), 0.7)
    xm = lam[:, None] * x + (1 - lam[:, None]) * x[index]
    kappa = torch.rand(16, generator=g)
    losses = []
    for _ in range(5):
        loss, _ = facemix_loss(lin(xm), lin(x), y, index, lam, kappa, "L4")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
