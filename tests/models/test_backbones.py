from __future__ import annotations

import pytest
import torch

from fer_core.models import create_backbone, list_backbones

SMALL = {
    "vit_small": dict(depth=1),
    "vit_base": dict(depth=1),
    "resnet50": dict(layers=[1, 1, 1, 1]),
}


@pytest.mark.parametrize("name", list_backbones())
def test_backbone_feature_views(name):
    size = 32
    bb = create_backbone(name, img_size=size, in_chans=1, **SMALL.get(name, {}))
    f = bb.features(torch.randn(2, 1, size, size), stages=True)
    d = bb.num_features
    assert f.patch.shape[0] == 2 and f.patch.shape[2] == d and f.pooled.shape == (2, d)
    assert f.stages and all(s.dim() == 4 for s in f.stages)
    if bb.kind == "vit":
        assert f.cls.shape == (2, d) and f.patch.shape[1] == bb.grid_size[0] * bb.grid_size[1]
        assert torch.allclose(f.pooled, f.patch.mean(1))
    else:
        assert f.cls is None and len(f.stages) == 4


def test_token_pool_uses_class_token():
    bb = create_backbone("vit_tiny_cpu", img_size=32, in_chans=1, pool="token", depth=1)
    f = bb.features(torch.randn(2, 1, 32, 32))
    assert torch.equal(f.pooled, f.cls)
    with pytest.raises(ValueError, match="model.pool"):
        create_backbone("vit_tiny_cpu", img_size=32, in_chans=1, pool="max")


def test_state_dict_round_trip_interpolates_pos_embed(tmp_path):
    src = create_backbone("vit_tiny_cpu", img_size=32, in_chans=1, depth=1)
    path = tmp_path / "enc.pt"
    torch.save(src.timm_state_dict(), path)
    dst = create_backbone("vit_tiny_cpu", img_size=48, in_chans=1, depth=1, checkpoint=path)
    assert dst.model.pos_embed.shape[1] == 1 + 36
    assert torch.equal(dst.model.patch_embed.proj.weight, src.model.patch_embed.proj.weight)
    other = create_backbone("vit_tiny_cpu", img_size=32, in_chans=1, depth=1, patch_size=4)
    with pytest.raises(ValueError, match="patch"):
        other.load_timm_state_dict(src.timm_state_dict())


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="model.checkpoint"):
        create_backbone("resnet_tiny_cpu", img_size=32, in_chans=1, checkpoint=tmp_path / "nope.pt")


@pytest.mark.parametrize("patch", [4, 8, 16])
def test_conv_stem_keeps_the_patch_grid(patch):
    # model.stem=conv: a ResNet stem whose stride is the patch size -> the same tokens and grid
    size = 64
    conv = create_backbone("vit_tiny_cpu", img_size=size, in_chans=1, stem="conv", patch_size=patch)
    plain = create_backbone("vit_tiny_cpu", img_size=size, in_chans=1, patch_size=patch)
    x = torch.randn(2, 1, size, size)
    assert conv.grid_size == plain.grid_size == (size // patch, size // patch)
    assert conv.features(x).patch.shape == plain.features(x).patch.shape
    assert not isinstance(conv.model.patch_embed.proj, torch.nn.Conv2d)
    # a state dict round trip through timm naming keeps the stem's weights
    other = create_backbone(
        "vit_tiny_cpu", img_size=size, in_chans=1, stem="conv", patch_size=patch
    )
    other.load_timm_state_dict(conv.timm_state_dict())
    conv.eval(), other.eval()
    assert torch.allclose(conv.pooled(x), other.pooled(x))


def test_bad_stem_settings_are_named():
    with pytest.raises(ValueError, match="model.stem must be one of patch, conv"):
        create_backbone("vit_tiny_cpu", img_size=32, in_chans=1, stem="hybrid")
    with pytest.raises(ValueError, match="patch_size 4, 8, 16 or 32"):
        create_backbone("vit_tiny_cpu", img_size=36, in_chans=1, stem="conv", patch_size=6)


def test_masked_image_modelling_refuses_a_conv_stem():
    from fer_core.models.mim import vit_of

    bb = create_backbone("vit_hybrid_cpu", img_size=32, in_chans=1)
    with pytest.raises(ValueError, match="model.stem=patch"):
        vit_of(bb)
    assert vit_of(create_backbone("vit_tiny_cpu", img_size=32, in_chans=1)) is not None
