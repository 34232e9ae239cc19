"""vit_patch_cpu: the hMLP patch stem (model.stem=hmlp) is token-local and MAE / MaskFeat run on it."""

from __future__ import annotations

import pytest
import torch

from fer_core.methods import StepContext, create_method
from fer_core.models.backbones import HMLPPatchEmbed, create_backbone, is_token_local
from fer_core.models.mim import vit_of


def _changed_tokens(name: str, train: bool, **kw) -> torch.Tensor:
    """Change the pixels of one patch (row 1, column 2 of a 6 x 6 grid) and return which tokens'
    embeddings before attention (patch embedding + position embedding) changed: bool [L]."""
    torch.manual_seed(0)
    bb = create_backbone(name, img_size=48, in_chans=1, **kw)
    vit = bb.model.train(train)
    x = torch.randn(4, 1, 48, 48)
    y = x.clone()
    y[:, :, 8:16, 16:24] = torch.randn(4, 1, 8, 8) * 3.0  # patch (1, 2) only
    with torch.no_grad():
        a = vit._pos_embed(vit.patch_embed(x))[:, vit.num_prefix_tokens :]
        b = vit._pos_embed(vit.patch_embed(y))[:, vit.num_prefix_tokens :]
    return ((a - b).abs().amax(dim=(0, 2)) > 0).reshape(6, 6)


@pytest.mark.parametrize("train", [False, True])
def test_masking_one_patch_changes_no_other_token(train: bool):
    changed = _changed_tokens("vit_patch_cpu", train)
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[1, 2] = True
    assert torch.equal(changed, expected)
    # the conv-stem hybrid is the counter-example: its neighbours see the changed patch
    assert _changed_tokens("vit_hybrid_cpu", train).sum() > 1


def test_hmlp_stem_shape_and_token_locality():
    bb = create_backbone("vit_patch_cpu", img_size=48, in_chans=3)
    pe = bb.model.patch_embed
    assert isinstance(pe, HMLPPatchEmbed) and is_token_local(pe)
    convs = [m for m in pe.proj if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [4, 2] == [c.stride[0] for c in convs]
    assert bb.grid_size == (6, 6) and bb.patch_size == 8
    assert bb.features(torch.randn(2, 3, 48, 48)).patch.shape == (2, 36, 96)
    assert not is_token_local(
        create_backbone("vit_hybrid_cpu", img_size=48, in_chans=1).model.patch_embed
    )
    p16 = create_backbone(
        "vit_patch_cpu", img_size=32, in_chans=1, patch_size=16, embed_dim=32, num_heads=2
    )
    assert [
        m.kernel_size[0] for m in p16.model.patch_embed.proj if isinstance(m, torch.nn.Conv2d)
    ] == [4, 2, 2]


def test_bad_hmlp_settings_name_the_knob():
    with pytest.raises(ValueError, match="model.stem=hmlp needs patch_size 4, 8, 16 or 32, got 6"):
        create_backbone("vit_patch_cpu", img_size=36, in_chans=1, patch_size=6)
    with pytest.raises(
        ValueError, match="model.stem_norm must be one of layer, batch, got 'group'"
    ):
        create_backbone("vit_patch_cpu", img_size=48, in_chans=1, stem_norm="group")
    with pytest.raises(ValueError, match="model.stem_norm applies to model.stem=hmlp only"):
        create_backbone("vit_patch_cpu", img_size=48, in_chans=1, stem="patch", stem_norm="batch")


def test_mim_refuses_the_conv_stem_and_names_the_knob():
    with pytest.raises(ValueError, match=r"model\.stem=conv"):
        vit_of(create_backbone("vit_hybrid_cpu", img_size=48, in_chans=1))
    with pytest.raises(ValueError, match=r"model\.stem=conv"):
        create_method("mae", create_backbone("vit_hybrid_cpu", img_size=48, in_chans=1), 7)


@pytest.mark.parametrize("name", ["mae", "maskfeat"])
@pytest.mark.parametrize("stem_norm", ["layer", "batch"])
def test_mae_and_maskfeat_train_a_step_on_vit_patch_cpu(name: str, stem_norm: str):
    torch.manual_seed(0)
    bb = create_backbone(
        "vit_patch_cpu", img_size=48, in_chans=1, embed_dim=32, depth=1, num_heads=2,
        stem_norm=stem_norm,
    )  # fmt: skip
    kw = {"decoder_depth": 1, "decoder_dim": 32, "decoder_heads": 2} if name == "mae" else {}
    m = create_method(name, bb, 7, **kw)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    stem = bb.model.patch_embed.proj[0].weight
    before = stem.detach().clone()
    ctx = StepContext(
        epoch=0, step=0, global_step=0, steps_per_epoch=1, num_epochs=1,
        device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    out = m.training_step({"image": torch.randn(8, 1, 48, 48), "index": torch.arange(8)}, ctx)
    assert torch.isfinite(out.loss)
    opt.zero_grad()
    out.loss.backward()
    opt.step()
    assert not torch.equal(stem, before)  # the hMLP stem is trained by the MIM loss


def test_flat_pool_sees_where_a_feature_is():
    torch.manual_seed(0)
    flat = create_backbone("vit_patch_cpu", img_size=48, in_chans=1, pool="flat").eval()
    gap = create_backbone("vit_patch_cpu", img_size=48, in_chans=1, pool="gap").eval()
    gap.model.load_state_dict({k: v for k, v in flat.model.state_dict().items() if "flat" not in k})
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        f, g = flat.features(x), gap.features(x)
        assert f.pooled.shape == g.pooled.shape == (2, 96)
        assert torch.allclose(f.patch, g.patch)  # the same encoder; only the pooling differs
        swapped = f.patch[:, torch.randperm(36, generator=torch.Generator().manual_seed(1))]
        assert torch.allclose(swapped.mean(1), g.pooled, atol=1e-6)  # gap: a bag of tokens
        assert not torch.allclose(flat.model.flat_pool(swapped.flatten(1)), f.pooled)
    # weights without the flat projection (e.g. a gap ViT's) load; the projection starts fresh
    flat.load_timm_state_dict(gap.timm_state_dict())
    with pytest.raises(ValueError, match="model.pool must be one of gap, token, flat"):
        create_backbone("vit_patch_cpu", img_size=48, in_chans=1, pool="max")
