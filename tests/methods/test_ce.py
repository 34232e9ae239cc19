from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

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


def test_bad_knobs_are_named():
    with pytest.raises(ValueError, match="label_smoothing"):
        _method(label_smoothing=1.5)
    with pytest.raises(TypeError, match="unknown settings"):
        _method(temperature=1.0)
