"""HOG targets (fer_core/losses/hog.py) against skimage.feature.hog and MaskFeat's gathering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_core.losses.hog import hog_cells, hog_dim, hog_patch_targets

skimage_feature = pytest.importorskip("skimage.feature")


@pytest.mark.parametrize("shape", [(48, 40), (50, 51)])
def test_matches_skimage_on_single_channel(shape: tuple[int, int]):
    rng = np.random.default_rng(0)
    img = rng.random(shape)
    ref = skimage_feature.hog(
        img,
        orientations=9,
        pixels_per_cell=(8, 8),
        cells_per_block=(1, 1),
        block_norm="L2",
        feature_vector=False,
    )  # [rows, cols, 1, 1, 9]
    ours = hog_cells(torch.from_numpy(img)[None, None], bins=9, cell=8, gradient="central")
    expected = torch.from_numpy(ref[:, :, 0, 0, :]).permute(2, 0, 1)
    assert ours.shape == (1, 1, 9, shape[0] // 8, shape[1] // 8)
    assert torch.allclose(ours[0, 0], expected, atol=1e-6)


def test_cells_are_l2_normalised_per_channel():
    cells = hog_cells(torch.randn(2, 3, 32, 32))  # sobel
    assert torch.allclose(cells.norm(dim=2), torch.ones(2, 3, 4, 4), atol=1e-4)


def test_orientation_of_a_vertical_edge():
    img = torch.zeros(1, 1, 16, 16)
    img[..., 8:] = 1.0  # intensity grows along columns: gradient angle 0 -> bin 0
    cells = hog_cells(img, gradient="sobel")
    assert cells[0, 0, :, 0, 0].argmax().item() == 0
    img_t = img.transpose(2, 3)  # grows along rows: 90 degrees -> bin 4
    assert hog_cells(img_t, gradient="sobel")[0, 0, :, 0, 0].argmax().item() == 4


def test_patch_targets_gather_the_cells_of_each_patch():
    imgs = torch.randn(2, 3, 32, 48)
    t = hog_patch_targets(imgs, 16)
    assert t.shape == (2, 2 * 3, hog_dim(3, 16)) == (2, 6, 108)
    cells = hog_cells(imgs)  # [2, 3, 9, 4, 6]
    # patch (row 1, col 2) = index 5; its cell (1, 0) = cell (3, 4) of the image, channel 2
    d = t[1, 5].reshape(2, 2, 3, 9)
    assert torch.allclose(d[1, 0, 2], cells[1, 2, :, 3, 4])
    with pytest.raises(ValueError, match="cell"):
        hog_patch_targets(imgs, 4)
