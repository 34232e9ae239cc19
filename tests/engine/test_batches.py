from __future__ import annotations

import pytest
import torch
from conftest import random_set

from fer_core.data.transforms import BatchAugment, random_crop_flip
from fer_core.engine.batches import BatchMaker
from fer_core.engine.metrics import classification_metrics
from fer_core.methods.base import MethodNeeds


def test_crop_flip_moves_boxes_with_pixels():
    img = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    img[0, 0, 4:8, 2:6] = 255  # box x 2..6, y 4..8
    box = torch.tensor([[2.0, 4.0, 6.0, 8.0]])
    for s in range(10):
        out, b = random_crop_flip(img, torch.Generator().manual_seed(s), pad=2, boxes=box)
        ys, xs = torch.nonzero(out[0, 0] == 255, as_tuple=True)
        assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == b[0].long().tolist()


@pytest.mark.parametrize("policy", ["none", "weak", "strong"])
def test_policies_are_repeatable_and_normalised(policy):
    imgs = random_set(8, 0, size=24).images
    aug = BatchAugment(policy)
    a, _ = aug(imgs, torch.Generator().manual_seed(3))
    b, _ = aug(imgs, torch.Generator().manual_seed(3))
    assert a.shape == imgs.shape and a.dtype == torch.float32 and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1


def test_bad_policy_names_setting():
    with pytest.raises(ValueError, match="trainer.aug.policy"):
        BatchAugment("medium")


def test_batch_holds_what_the_method_needs():
    ds = random_set(20, 0, size=24)
    needs = MethodNeeds(views=2, boxes=True, unlabelled=True)
    bm = BatchMaker(
        ds, needs, {"policy": "weak"}, torch.device("cpu"), unlabelled=random_set(10, 1, size=24)
    )
    b = bm.make(torch.arange(6), torch.Generator().manual_seed(0))
    assert b["image"].shape == (6, 1, 24, 24) and len(b["views"]) == 2
    assert b["box"].shape == (6, 4) and b["votes"].shape == (6, 10)
    assert b["unlabelled"]["weak"].shape == b["unlabelled"]["strong"].shape == (6, 1, 24, 24)
    assert b["true_label"].shape == (6,)


def test_metrics_uar_is_macro_recall():
    logits = torch.eye(3)[torch.tensor([0, 0, 1, 2, 2, 2])]
    labels = torch.tensor([0, 1, 1, 2, 2, -1])
    m, cm = classification_metrics(logits * 5, labels, 3, "val", true_labels=labels.clamp(min=0))
    assert m["val/acc"] == pytest.approx(4 / 5)
    assert m["val/uar"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert cm.sum() == 5 and cm[1, 0] == 1


def test_auto_policy_is_none_on_synthfer_and_weak_on_real_data():
    from fer_core.data.transforms import resolve_policy

    assert resolve_policy("auto", "synthfer") == "none"
    assert resolve_policy("auto", "rafdb") == resolve_policy("auto", "ferplus") == "weak"
    assert resolve_policy("strong", "synthfer") == "strong"  # an explicit policy is kept
    synth = random_set(8, 1, size=24)
    synth.name = "synthfer"
    maker = BatchMaker(synth, MethodNeeds(), {"policy": "auto"}, torch.device("cpu"))
    assert maker.policy == "none"
    real = random_set(8, 1, size=24)
    real.name = "rafdb"
    assert BatchMaker(real, MethodNeeds(), {"policy": "auto"}, torch.device("cpu")).policy == "weak"
