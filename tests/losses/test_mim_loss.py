"""MAE loss (fer_core/losses/mim.py): REFERENCE_VALUES B2/B3, patchify round trip, limit cases."""

from __future__ import annotations

import pytest
import torch

from fer_core.losses.mim import mae_loss, masked_mse, normalize_patches, patchify, unpatchify


def _b_setup() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    imgs = torch.randn(2, 3, 224, 224, generator=g)
    pred = torch.randn(2, 196, 768, generator=g)
    mask = torch.zeros(2, 196)
    mask[:, ::2] = 1
    return imgs, pred, mask


@pytest.mark.parametrize(("norm_pix", "expected"), [(True, 2.0067232), (False, 2.0121326)])
def test_reference_values_b2_b3(norm_pix: bool, expected: float):
    imgs, pred, mask = _b_setup()
    assert mae_loss(imgs, pred, mask, 16, norm_pix_loss=norm_pix).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_patchify_round_trip_and_order():
    imgs = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).reshape(2, 3, 8, 12)
    patches = patchify(imgs, 4)
    assert patches.shape == (2, 6, 4 * 4 * 3)
    # patch 1 is row 0, column 1; its first pixel is (row 0, col 4), channels last
    assert patches[0, 1, :3].tolist() == imgs[0, :, 0, 4].tolist()
    assert torch.equal(unpatchify(patches, 4, 3, (2, 3)), imgs)
    with pytest.raises(ValueError, match="patch_size"):
        patchify(imgs, 5)


def test_only_masked_patches_count():
    imgs, pred, mask = _b_setup()
    target = normalize_patches(patchify(imgs, 16))
    perfect_on_masked = torch.where(mask.bool().unsqueeze(-1), target, pred)
    assert mae_loss(imgs, perfect_on_masked, mask, 16).item() == pytest.approx(0.0, abs=1e-10)
    assert masked_mse(pred, target, torch.zeros_like(mask)).item() == 0.0


def test_norm_pix_targets_have_zero_mean_unit_unbiased_var():
    t = normalize_patches(torch.randn(3, 5, 48) * 4 + 2)
    assert torch.allclose(t.mean(-1), torch.zeros(3, 5), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(3, 5), atol=1e-4)


def test_gradient_steps_lower_the_loss():
    imgs, _, mask = _b_setup()
    imgs = imgs[:, :, :32, :32]
    pred = torch.zeros(2, 4, 768, requires_grad=True)
    m = mask[:, :4]
    opt = torch.optim.SGD([pred], lr=10.0)
    losses = []
    for _ in range(5):
        loss = mae_loss(imgs, pred, m, 16)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
