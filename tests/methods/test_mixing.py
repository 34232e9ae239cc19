"""Mixup / CutMix (000 Eq. 9-10; reused by 004's FaceMix): formulas, no in-place, reproducible."""

from __future__ import annotations

import pytest
import torch

from fer_core.methods.mixing import MixResult, mix_batch, sample_lambda


def _batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 16, 16, generator=g)
    boxes = torch.tensor([[2.0, 2.0, 14.0, 14.0]]).repeat(n, 1) + torch.arange(n)[:, None] * 0.1
    return images, boxes


@pytest.mark.parametrize("kind", ["mixup", "cutmix", "both"])
def test_mixing_never_modifies_its_inputs(kind):
    images, boxes = _batch()
    before, boxes_before = images.clone(), boxes.clone()
    out = mix_batch(images, torch.Generator().manual_seed(0), kind=kind, boxes=boxes)
    assert torch.equal(images, before) and torch.equal(boxes, boxes_before)
    assert out.images.data_ptr() != images.data_ptr()
    out.images.add_(1.0)  # the result does not alias the input either
    out.boxes.add_(1.0)
    assert torch.equal(images, before) and torch.equal(boxes, boxes_before)


def test_mixup_is_eq_10():
    images, _ = _batch()
    index = torch.tensor([1, 2, 3, 4, 5, 0])
    lam = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    out = mix_batch(images, kind="mixup", index=index, lam=lam)
    expected = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * images[index]
    assert torch.allclose(out.images, expected)
    assert torch.equal(out.lam, lam) and not out.cutmix.any()
    assert torch.equal(out.cut_boxes, torch.zeros(6, 4))


def test_cutmix_pastes_a_box_and_corrects_lambda_to_the_kept_area():
    images, boxes = _batch()
    index = torch.tensor([5, 4, 3, 2, 1, 0])
    lam = torch.full((6,), 0.75)
    out = mix_batch(images, torch.Generator().manual_seed(3), kind="cutmix", index=index,
                    lam=lam, boxes=boxes)  # fmt: skip
    assert out.cutmix.all()
    for i in range(6):
        x1, y1, x2, y2 = out.cut_boxes[i].long().tolist()
        inside = torch.zeros(16, 16, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        assert torch.equal(out.images[i][:, inside], images[index[i]][:, inside])
        assert torch.equal(out.images[i][:, ~inside], images[i][:, ~inside])
        assert out.lam[i].item() == pytest.approx(1 - inside.sum().item() / 256)
    assert torch.equal(out.partner_boxes, boxes[index])  # boxes are mixed along (FaceMix)


def test_targets_are_the_mixed_labels():
    images, _ = _batch(3)
    out = mix_batch(images, kind="mixup", index=torch.tensor([1, 2, 0]),
                    lam=torch.tensor([0.25, 0.5, 1.0]))  # fmt: skip
    t = out.targets(torch.tensor([0, 1, 1]), 3)
    assert torch.allclose(t, torch.tensor([[0.25, 0.75, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
    assert isinstance(out, MixResult)


def test_draws_come_from_the_generator():
    images, _ = _batch(32)
    a = mix_batch(images, torch.Generator().manual_seed(7))
    b = mix_batch(images, torch.Generator().manual_seed(7))
    c = mix_batch(images, torch.Generator().manual_seed(8))
    assert torch.equal(a.images, b.images) and torch.equal(a.lam, b.lam)
    assert not torch.equal(a.lam, c.lam)
    assert 0 < int(a.cutmix.sum()) < 32  # "both": a mix of the two kinds
    lam = sample_lambda(4000, 2.0, 2.0, torch.Generator().manual_seed(0))
    assert lam.mean().item() == pytest.approx(0.5, abs=0.02)  # Beta(2, 2): mean 1/2
    assert lam.var().item() == pytest.approx(0.05, abs=0.005)  # ab / ((a+b)^2 (a+b+1)) = 1/20


@pytest.mark.parametrize(
    "kw, knob",
    [({"kind": "mix"}, "mix.kind"), ({"alpha": 0.0}, "mix.alpha"), ({"beta": -1.0}, "mix.beta")],
)
def test_bad_settings_name_the_knob(kw, knob):
    with pytest.raises(ValueError, match=knob):
        mix_batch(torch.rand(2, 1, 4, 4), **kw)
