"""SimFLE (``methods/simfle.py``, 002 Sec. 3, Eq. 6): the step's terms per component (Table 3),
the GFL family (Table 4), the semantic mask, the logged images, hand-off, and bad input refused
at construction with the knob named."""

from __future__ import annotations

import pytest
import torch

from fer_core.methods import MethodInfo, StepContext, create_method
from fer_core.models.backbones import create_backbone

# CPU sizes: FaceMAE's ViT, decoder and heads (the defaults are ViT-B/16 at 112 px, 4096 wide)
SMALL = dict(proj_hidden_dim=32, proj_dim=16, pred_hidden_dim=32, distil_hidden_dim=32,
             distil_dim=16, ffl_img_size=32, ffl_patch=8, ffl_encoder="vit_tiny_cpu",
             decoder_depth=1, decoder_dim=32, decoder_heads=2,
             ffl_feature_stage=1)  # fmt: skip  # resnet_tiny_cpu's 4x4 map at 32 px (the last is 1x1)


def _method(**kw):
    bb = create_backbone("resnet_tiny_cpu", img_size=32, in_chans=1)
    info = MethodInfo(num_classes=7, img_size=32, channels=1, batch_size=8)
    return create_method("simfle", bb, 7, info=info, **{**SMALL, **kw})


def _step(m, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    views = [torch.randn(8, 1, 32, 32, generator=g) for _ in range(3)]
    ctx = StepContext(0, 0, 0, 1, 1, torch.device("cpu"), torch.Generator().manual_seed(seed))
    return m.training_step({"image": views[0], "views": views}, ctx)


@pytest.mark.parametrize(
    ("kw", "terms"),
    [
        ({"ffl_enabled": False}, {"gfl"}),  # Table 3 (a): GFL only
        ({"connection": "direct"}, {"gfl", "rec", "group"}),  # (b)
        ({"ffl_masking": "random"}, {"gfl", "rec", "group", "distil"}),  # (c)
        ({}, {"gfl", "rec", "group", "distil"}),  # (d): SimFLE
    ],
)
def test_step_terms_and_declared_metrics_follow_table_3(kw, terms):
    m = _method(**kw)
    m.on_train_start(None)
    out = _step(m)
    assert set(out.logs) == {"simfle/loss"} | {f"simfle/{t}" for t in terms}
    assert set(out.logs) == set(m.own_metrics) and m.needs.views == 3 and not m.needs.labels
    # Eq. 6: L_s + L_r + alpha L_d + beta L_g
    total = out.logs["simfle/gfl"] + out.logs.get("simfle/rec", 0.0)
    total = total + m.alpha * out.logs.get("simfle/distil", 0.0)
    total = total + m.beta * out.logs.get("simfle/group", 0.0)
    assert out.loss.item() == pytest.approx(float(total), rel=1e-5)
    out.loss.backward()
    assert any(p.grad is not None for p in m.backbone.parameters())


def test_the_connection_decides_what_reaches_the_backbone():
    # distil (the authors' code): the masking's feature map carries no gradient, so FFL's own
    # terms (L_r + beta L_g) do not reach the backbone; direct: L_g reaches it
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for conn, reaches in (("distil", False), ("direct", True)):
        m = _method(connection=conn, gfl_method="simclr", pred_hidden_dim=None)
        out = m.ffl(x, torch.Generator().manual_seed(0))
        w = next(m.backbone.parameters())  # the stem's first convolution
        g = torch.autograd.grad(out["rec"] + out["group"], w, allow_unused=True)[0]
        assert (g is not None and bool(torch.count_nonzero(g))) == reaches, conn


def test_the_authors_grouping_init_leaves_the_grouping_loss_without_gradient():
    # constant weights: every grouped channel is the same map, every cosine 1, whose gradient is 0
    x = torch.randn(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    size = {}
    for init in ("code", "random"):
        m = _method(ffl_grouping_init=init, gfl_method="simclr", pred_hidden_dim=None)
        out = m.ffl(x, torch.Generator().manual_seed(0))
        g = torch.autograd.grad(out["group"], m.facemae.grouping[0].weight)[0]
        size[init] = g.abs().max().item() / out["group"].item()
    # relative to the loss: float rounding under the authors' init, 10^4 times larger else
    assert size["code"] < 1e-4 * size["random"], size


@pytest.mark.parametrize("gfl", ["byol", "simsiam", "moco", "mocov2", "simclr"])
def test_every_gfl_architecture_of_table_4_runs(gfl):
    kw = {"queue_size": 16} if gfl.startswith("moco") else {}
    if gfl in ("moco", "mocov2", "simclr"):
        kw["pred_hidden_dim"] = None  # no predictor
    m = _method(gfl_method=gfl, **kw)
    m.on_train_start(None)
    out = _step(m)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    m.after_optimizer_step(StepContext(0, 0, 0, 1, 1, torch.device("cpu")))


def test_semantic_mask_keeps_the_highest_scoring_patches_and_the_images_are_logged():
    m = _method()
    m.eval()
    x = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(0)
    out = m.ffl(x, gen)
    keep = (out["mask"] == 0).sum(1)
    assert keep.tolist() == [int(16 * 0.25)] * 4  # 32 px / patch 8 = 16 patches, gamma 0.75
    kept = out["scores"].masked_fill(out["mask"] == 1, float("inf")).min(1).values
    dropped = out["scores"].masked_fill(out["mask"] == 0, -float("inf")).max(1).values
    assert torch.all(kept >= dropped)  # ascending order: the lowest scores are masked
    imgs = m.log_images({"image": x})
    assert set(imgs) == {"simfle/semantic_mask"}
    assert imgs["simfle/semantic_mask"].shape == (3, 4 * 32, 4 * 32)
    assert _method(ffl_enabled=False).log_images({"image": x}) == {}


def test_only_the_backbone_is_handed_on():
    m = _method()
    assert m.handoff_parts() == ("backbone",)
    with pytest.raises(RuntimeError, match="simfle_linear"):
        m.predict(torch.zeros(1, 1, 32, 32))


def test_ffl_input_size_comes_from_the_knob_or_the_data():
    assert _method(ffl_img_size=16).facemae.img_size == 16
    assert _method(ffl_img_size=None).facemae.img_size == 32  # MethodInfo.img_size


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"ffl_groups": 24}, r"ffl\.groups=24 does not divide the backbone's 64"),
        ({"ffl_mask_ratio": 1.0}, r"ffl\.mask_ratio=1\.0 .*\(0, 1\)"),
        ({"ffl_mask_ratio": 0.0}, r"ffl\.mask_ratio=0\.0 .*\(0, 1\)"),
        ({"ffl_patch": 5}, r"ffl\.patch=5 does not divide the FFL input size 32"),
        ({"alpha": -0.1}, r"alpha=-0\.1 .*>= 0"),
        ({"beta": -1}, r"beta=-1 .*>= 0"),
        ({"connection": "indirect"}, r"connection='indirect' .*distil, direct"),
        ({"ffl_masking": "grid"}, r"ffl\.masking='grid' .*semantic, random"),
        ({"gfl_method": "dino"}, r"gfl\.method='dino' .*byol"),
        ({"gfl_method": "simclr", "pred_hidden_dim": 32}, r"pred\.hidden_dim=32 does not apply"),
        ({"views": ["simclr", "simclr"]}, r"method\.views=.*three policies"),
        ({"ffl_feature_stage": -1}, r"ffl\.feature_stage=-1: .* 1x1 at data\.img_size=32"),
        ({"ffl_feature_stage": 4}, r"ffl\.feature_stage=4 is not allowed"),
        ({"ffl_grouping_init": "zeros"}, r"ffl\.grouping_init='zeros' .*random, code"),
    ],
)
def test_bad_settings_fail_at_construction_naming_the_knob(kw, match):
    with pytest.raises(ValueError, match=match):
        _method(**kw)
