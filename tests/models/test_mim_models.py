"""Masking, encoders and the MAE decoder (fer_core/models/mim.py) on small timm ViTs."""

from __future__ import annotations

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from fer_core.models.mim import (
    MAEDecoder,
    mae_encode,
    maskfeat_encode,
    random_masking,
    sincos_pos_embed_2d,
)


def _vit(img: int = 32, patch: int = 8, **kw) -> VisionTransformer:
    return VisionTransformer(
        img_size=img, patch_size=patch, in_chans=3, embed_dim=32, depth=1, num_heads=2,
        num_classes=0, **kw,
    )  # fmt: skip


@pytest.mark.parametrize(("length", "ratio"), [(16, 0.75), (49, 0.4), (36, 0.9), (10, 0.0)])
def test_masking_keeps_exactly_the_right_number(length: int, ratio: float):
    ids_keep, mask, ids_restore = random_masking(5, length, ratio)
    keep = int(length * (1 - ratio))
    assert ids_keep.shape == (5, keep)
    assert mask.shape == (5, length)
    assert (mask.sum(1) == length - keep).all()
    # kept ids are exactly the zeros of the mask; ids_restore inverts the shuffle
    for i in range(5):
        assert set(ids_keep[i].tolist()) == set((mask[i] == 0).nonzero().flatten().tolist())
        assert sorted(ids_restore[i].tolist()) == list(range(length))


def test_masking_is_reproducible_under_a_seed():
    a = random_masking(4, 16, 0.75, generator=torch.Generator().manual_seed(3))
    b = random_masking(4, 16, 0.75, generator=torch.Generator().manual_seed(3))
    c = random_masking(4, 16, 0.75, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[1], c[1])
    assert not torch.equal(a[1][0], a[1][1])  # per-sample masks differ


def test_bad_mask_ratio_raises():
    for bad in (1.0, -0.1, 0.99):
        with pytest.raises(ValueError, match="mask_ratio"):
            random_masking(2, 16, bad)


@pytest.mark.parametrize("class_token", [True, False])
def test_mae_encoder_and_decoder_shapes(class_token: bool):
    vit = _vit(class_token=class_token, global_pool="token" if class_token else "avg")
    imgs = torch.randn(3, 3, 32, 32)
    latent, mask, ids_restore = mae_encode(vit, imgs, 0.75)
    prefix = 1 if class_token else 0
    assert latent.shape == (3, prefix + 4, 32)
    dec = MAEDecoder(32, 8 * 8 * 3, (4, 4), prefix, depth=1, dim=16, heads=2)
    assert dec(latent, ids_restore).shape == (3, 16, 192)


def test_mae_encoder_ignores_masked_pixels():
    vit = _vit().eval()
    imgs = torch.randn(2, 3, 32, 32)
    latent, mask, _ = mae_encode(vit, imgs, 0.5, torch.Generator().manual_seed(0))
    changed = imgs.clone()
    m = mask[:, :].reshape(2, 4, 4).repeat_interleave(8, 1).repeat_interleave(8, 2)
    changed[m.unsqueeze(1).expand_as(changed) == 1] = 100.0  # only masked patches change
    latent2, mask2, _ = mae_encode(vit, changed, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(mask, mask2)
    assert torch.allclose(latent, latent2, atol=1e-5)


def test_maskfeat_encoder_replaces_masked_tokens():
    vit = _vit().eval()
    token = torch.zeros(1, 1, 32)
    imgs = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 16)
    mask[:, :8] = 1
    out = maskfeat_encode(vit, imgs, mask, token)
    assert out.shape == (2, 16, 32)  # every token stays, none dropped
    changed = imgs.clone()
    changed[:, :, :16] = 7.0  # the first 8 patches (two patch rows) are masked
    assert torch.allclose(out, maskfeat_encode(vit, changed, mask, token), atol=1e-5)


def test_sincos_embedding_and_bad_decoder_settings():
    pe = sincos_pos_embed_2d(16, (3, 4))
    assert pe.shape == (12, 16)
    assert torch.allclose(pe[0, :4], torch.zeros(4)) and torch.allclose(pe[0, 4:8], torch.ones(4))
    with pytest.raises(ValueError, match="decoder.heads"):
        MAEDecoder(32, 192, (4, 4), 1, depth=1, dim=16, heads=3)
    with pytest.raises(ValueError, match="decoder.depth"):
        MAEDecoder(32, 192, (4, 4), 1, depth=0, dim=16, heads=2)
