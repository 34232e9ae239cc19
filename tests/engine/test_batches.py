from __future__ import annotations

import pytest
import torch
from conftest import random_set

from fer_core.data.transforms import random_crop_flip
from fer_core.engine.batches import BatchMaker
from fer_core.engine.build import compose
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


SEMI = dict(compose(["trainer.epochs=1"]).trainer.semi)  # the trainer group's defaults


def _maker(ds, needs, policy="none", **kw):
    kw["semi"] = {**SEMI, **kw.get("semi", {})}
    return BatchMaker(ds, needs, {"policy": policy}, torch.device("cpu"), **kw)


def test_batch_holds_what_the_method_needs():
    ds = random_set(20, 0, size=24)
    needs = MethodNeeds(views=2, boxes=True, unlabelled=True)
    bm = _maker(ds, needs, "crop_flip", unlabelled=random_set(10, 1, size=24))
    b = bm.make(torch.arange(6), torch.Generator().manual_seed(0))
    assert b["image"].shape == (6, 1, 24, 24) and len(b["views"]) == 2
    assert b["box"].shape == (6, 4) and len(b["boxes"]) == 2 and b["votes"].shape == (6, 10)
    u = b["unlabelled"]
    assert u["weak"].shape == u["strong"].shape == (6, 1, 24, 24) and len(u["boxes"]) == 2
    assert b["true_label"].shape == (6,)


@pytest.mark.parametrize("policy", ["weak", "strong", "simclr", "erase", "crop_flip"])
def test_two_views_differ_under_a_random_policy_and_not_under_none(policy):
    ds = random_set(16, 0, size=24)
    g = torch.Generator().manual_seed(1)
    b = _maker(ds, MethodNeeds(views=2), views=[policy, policy]).make(torch.arange(16), g)
    v0, v1 = b["views"]
    differs = (v0 != v1).flatten(1).any(dim=1)
    assert differs.float().mean() >= 0.5  # flips can coincide; most samples must differ
    b = _maker(ds, MethodNeeds(views=2), views=["none", "none"]).make(torch.arange(16), g)
    assert torch.equal(b["views"][0], b["views"][1]) and torch.equal(b["image"], b["views"][0])


def test_each_view_has_its_own_policy_and_boxes_on_synthfer():
    from fer_core.data import build_splits
    from fer_core.data.augment import load_policy

    ds = build_splits("synthfer", n_train=32, n_val=8, n_test=8, img_size=48).train
    idx = torch.arange(12)
    bm = _maker(ds, MethodNeeds(views=2, boxes=True), views=["weak", "simclr"])
    b = bm.make(idx, torch.Generator().manual_seed(4))
    # replay: view k is policy k applied with the generator where view k-1 left it
    g = torch.Generator().manual_seed(4)
    for k, name in enumerate(["weak", "simclr"]):
        x, box = load_policy(name)(ds.images[idx], g, ds.boxes[idx].float())
        assert torch.equal(b["views"][k], x) and torch.equal(b["boxes"][k], box)
        # the face box still encloses the (warped) face: carry a mask of the true box along
    g = torch.Generator().manual_seed(4)
    for k, name in enumerate(["weak", "simclr"]):
        mask = torch.zeros(len(idx), 1, 48, 48, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(ds.boxes[idx].round().long().tolist()):
            mask[i, 0, y1:y2, x1:x2] = 255
        warped, _ = load_policy(name)(mask, g, ds.boxes[idx].float(), warp_only=True)
        inside = torch.zeros_like(warped, dtype=torch.bool)
        for i, (x1, y1, x2, y2) in enumerate(b["boxes"][k].floor().long().tolist()):
            inside[i, 0, max(y1 - 1, 0) : y2 + 2, max(x1 - 1, 0) : x2 + 2] = True
        face = warped > 0  # normalised: the mask's support is > -1 -> > 0 after warping 255s
        assert (face & ~inside).sum() <= 0.005 * face.sum(), name


def test_unlabelled_stream_ratio_views_and_no_replacement():
    ds, pool = random_set(40, 0, size=16), random_set(60, 1, size=16)
    needs = MethodNeeds(unlabelled=True, boxes=True)
    semi = {"unlabelled_ratio": 2.0, "unlabelled_views": ["none", "weak", "strong"]}
    bm = _maker(ds, needs, unlabelled=pool, semi=semi)
    g = torch.Generator().manual_seed(0)
    bm.start_epoch(g)
    seen = []
    for step in range(3):  # 3 batches x 10 labelled -> 60 unlabelled: the whole pool once
        u = bm.make(torch.arange(step * 10, step * 10 + 10), g)["unlabelled"]
        assert len(u["views"]) == 3 and u["views"][0].shape == (20, 1, 16, 16)
        assert set(u) >= {"none", "weak", "strong", "index", "boxes"}
        seen.append(u["index"])
    assert sorted(torch.cat(seen).tolist()) == list(range(60))  # without replacement


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"policy": "stronk"}, "trainer.aug.policy.*'stronk'.*did you mean 'strong'"),
        ({"views": ["weak"]}, "method.views has 1 policy.*needs 2 view"),
        ({"views": ["weak", "simclear"]}, "method.views.*'simclear'"),
        ({"semi": {"unlabelled_ratio": 0}}, "trainer.semi.unlabelled_ratio must be a number > 0, got 0"),
        ({"semi": {"unlabelled_views": ["weak", "nope"]}}, "trainer.semi.unlabelled_views.*'nope'"),
    ],
)  # fmt: skip
def test_bad_views_name_the_knob(kw, match):
    ds = random_set(8, 0, size=16)
    policy = kw.pop("policy", "none")
    with pytest.raises(ValueError, match=match):
        _maker(ds, MethodNeeds(views=2, unlabelled=True), policy, **kw)


def test_metrics_uar_is_macro_recall():
    logits = torch.eye(3)[torch.tensor([0, 0, 1, 2, 2, 2])]
    labels = torch.tensor([0, 1, 1, 2, 2, -1])
    m, cm = classification_metrics(logits * 5, labels, 3, "val", true_labels=labels.clamp(min=0))
    assert m["val/acc"] == pytest.approx(4 / 5)
    assert m["val/uar"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert cm.sum() == 5 and cm[1, 0] == 1


def test_auto_policy_is_none_on_synthfer_and_crop_flip_on_real_data():
    from fer_core.data.transforms import resolve_policy

    assert resolve_policy("auto", "synthfer") == "none"
    assert resolve_policy("auto", "rafdb") == resolve_policy("auto", "ferplus") == "crop_flip"
    assert resolve_policy("strong", "synthfer") == "strong"  # an explicit policy is kept
    synth = random_set(8, 1, size=24)
    synth.name = "synthfer"
    maker = BatchMaker(synth, MethodNeeds(), {"policy": "auto"}, torch.device("cpu"))
    assert maker.policy == "none"
    real = random_set(8, 1, size=24)
    real.name = "rafdb"
    assert (
        BatchMaker(real, MethodNeeds(), {"policy": "auto"}, torch.device("cpu")).policy
        == "crop_flip"
    )
