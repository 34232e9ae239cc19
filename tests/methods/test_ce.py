from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fer_core.data.base import FERImageSet
from fer_core.losses.ferplus import multi_target_loss
from fer_core.methods import StepContext, TrainContext, create_method
from fer_core.models import create_backbone


def _method(**kw):
    torch.manual_seed(0)
    bb = create_backbone("resnet_tiny_cpu", img_size=16, in_chans=1)
    return create_method("ce", bb, 4, **kw)


def _batch(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    votes = torch.rand(n, 10, generator=g)
    return {"image": torch.randn(n, 1, 16, 16, generator=g), "label": torch.randint(0, 4, (n,), generator=g),
            "index": torch.arange(n), "votes": votes}  # fmt: skip


CTX = StepContext(
    epoch=0, step=0, global_step=0, steps_per_epoch=1, num_epochs=1, device=torch.device("cpu")
)


def test_hard_label_loss_is_torch_cross_entropy():
    m, b = _method(label_smoothing=0.1), _batch()
    out = m.training_step(b, CTX)
    assert out.loss.item() == pytest.approx(
        F.cross_entropy(m(b["image"]), b["label"], label_smoothing=0.1).item(), rel=1e-5
    )


def test_soft_labels_use_normalised_votes():
    m, b = _method(soft_labels=True), _batch()
    t = b["votes"][:, :4] / b["votes"][:, :4].sum(1, keepdim=True)
    want = -(t * F.log_softmax(m(b["image"]), 1)).sum(1).mean()
    assert m.training_step(b, CTX).loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_class_balanced_weights_inverse_frequency():
    m = _method(class_balanced=True)
    ds = type("DS", (), {"labels": torch.tensor([0, 0, 0, 1, 2, 3, -1])})()
    m.on_train_start(
        TrainContext(train_set=ds, num_classes=4, device=torch.device("cpu"), iterate_train=None)
    )
    w = m.class_weight
    assert w[1] == pytest.approx(3 * w[0]) and w.mean() == pytest.approx(1.0)


def test_a_few_steps_lower_the_loss():
    m, b = _method(), _batch(16)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = m.training_step(b, CTX).loss.item()
    for _ in range(10):
        loss = m.training_step(b, CTX).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert m.training_step(b, CTX).loss.item() < first


def _ferplus_mode(m, mode: str) -> None:
    ds = FERImageSet(
        images=torch.zeros(2, 1, 16, 16, dtype=torch.uint8),
        labels=torch.tensor([0, 1]),
        num_classes=4,
        meta={"label_mode": mode},
    )
    m.on_train_start(
        TrainContext(train_set=ds, num_classes=4, device=torch.device("cpu"), iterate_train=None)
    )


def _targets(n=8):
    t = torch.zeros(n, 4)
    t[:, 0], t[::2, 2] = 1.0, 1.0  # even rows: two classes, half each
    return t / t.sum(1, keepdim=True)


def test_ferplus_probability_trains_on_a_drawn_label():
    m, b = _method(), _batch()
    _ferplus_mode(m, "probability")
    b["target"] = _targets()
    ctx = StepContext(**{**CTX.__dict__, "generator": torch.Generator().manual_seed(5)})
    loss = m.training_step(b, ctx).loss.item()
    drawn = torch.multinomial(b["target"], 1, generator=torch.Generator().manual_seed(5))[:, 0]
    assert drawn[1::2].eq(0).all() and set(drawn[::2].tolist()) <= {0, 2}
    want = F.cross_entropy(m(b["image"]), drawn).item()
    assert loss == pytest.approx(want, rel=1e-5)
    # a draw per use: the same batch gets other labels on another step
    losses = {round(m.training_step(b, ctx).loss.item(), 5) for _ in range(8)}
    assert len(losses) > 1


def test_ferplus_multi_target_trains_the_reference_loss():
    m, b = _method(soft_labels=True, label_smoothing=0.1), _batch()
    _ferplus_mode(m, "multi_target")
    b["target"] = _targets()
    want = multi_target_loss(m(b["image"]), b["target"]).item()
    assert m.training_step(b, CTX).loss.item() == pytest.approx(want, rel=1e-5)


def test_ferplus_crossentropy_uses_the_soft_target():
    m, b = _method(), _batch()  # soft_labels false: the label mode decides
    _ferplus_mode(m, "crossentropy")
    b["target"] = _targets()
    want = -(b["target"] * F.log_softmax(m(b["image"]), 1)).sum(1).mean().item()
    assert m.training_step(b, CTX).loss.item() == pytest.approx(want, rel=1e-5)


def test_bad_knobs_are_named():
    with pytest.raises(ValueError, match="label_smoothing"):
        _method(label_smoothing=1.5)
    with pytest.raises(TypeError, match="unknown settings"):
        _method(temperature=1.0)
