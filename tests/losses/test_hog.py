"""HOG targets (fer_core/losses/hog.py) against skimage.feature.hog and MaskFeat's gathering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fer_core.losses.hog import gaussian_window, hog_cells, hog_dim, hog_patch_targets

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
    ours = hog_cells(
        torch.from_numpy(img)[None, None], bins=9, cell=8, gradient="central", orientation="skimage"
    )
    expected = torch.from_numpy(ref[:, :, 0, 0, :]).permute(2, 0, 1)
    assert ours.shape == (1, 1, 9, shape[0] // 8, shape[1] // 8)
    assert torch.allclose(ours[0, 0], expected, atol=1e-6)


def test_cells_are_l2_normalised_per_channel():
    cells = hog_cells(torch.randn(2, 3, 32, 32))  # sobel
    assert torch.allclose(cells.norm(dim=2), torch.ones(2, 3, 4, 4), atol=1e-4)


@pytest.mark.parametrize("orientation,bins", [("skimage", (0, 4)), ("maskfeat", (4, 0))])
def test_orientation_of_a_vertical_edge(orientation: str, bins: tuple[int, int]):
    img = torch.zeros(1, 1, 16, 16)
    img[..., 8:] = 1.0  # intensity grows along columns: skimage's angle 0, MaskFeat's 90
    cells = hog_cells(img, gradient="sobel", orientation=orientation)
    assert cells[0, 0, :, 0, 0].argmax().item() == bins[0]
    img_t = img.transpose(2, 3)  # grows along rows: skimage's 90, MaskFeat's 0
    assert hog_cells(img_t, orientation=orientation)[0, 0, :, 0, 0].argmax().item() == bins[1]


def _g(n: int) -> float:
    """MaskFeat's 1-d Gaussian of the 16-px window (std 8) at pixel n, unnormalised."""
    return math.exp(-0.5 * ((n - 7.5) / 8) ** 2)


@pytest.mark.parametrize("orientation", ["maskfeat", "skimage"])
@pytest.mark.parametrize("window", [16, None])
def test_hand_computed_cell(orientation: str, window: int | None):
    """x = row + 2 col on a 16 x 16 image (one MaskFeat window); the top-left 8 x 8 cell.

    Sobel with reflect padding: inside, g_rows = 8, g_cols = 16, magnitude 8 sqrt(5), MaskFeat's
    angle atan2(16, 8) = 63.4 deg (bin 3), skimage's atan2(8, 16) = 26.6 deg (bin 1). Row 0 has
    g_rows = 0 (the padding mirrors row 1): magnitude 16, MaskFeat 90 deg (bin 4), skimage 0 (bin
    0). Column 0 has g_cols = 0: magnitude 8, MaskFeat 0 (bin 0), skimage 90 (bin 4); pixel (0, 0)
    has no gradient. The Gaussian window weights pixel (i, j) by g(i) g(j).
    """
    i, j = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    img = (i + 2 * j)[None, None]
    w = _g if window else (lambda n: 1.0)
    inner = sum(w(n) for n in range(1, 8))  # the cell's pixels 1..7 along one axis
    row0 = 16 * w(0) * inner  # row 0, columns 1..7
    col0 = 8 * w(0) * inner  # column 0, rows 1..7
    interior = 8 * math.sqrt(5) * inner * inner
    hist = torch.zeros(9, dtype=torch.float64)
    if orientation == "maskfeat":
        hist[3], hist[4], hist[0] = interior, row0, col0
    else:
        hist[1], hist[0], hist[4] = interior, row0, col0
    want = hist / hist.norm()
    got = hog_cells(img.double(), orientation=orientation, window=window)[0, 0, :, 0, 0]
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_gaussian_window_is_maskfeats_kernel():
    k = gaussian_window(16)
    g = torch.tensor([_g(n) for n in range(16)])
    torch.testing.assert_close(k, (g[:, None] * g[None, :]) / (g.sum() ** 2))
    assert k.argmax().item() in (7 * 16 + 7, 7 * 16 + 8, 8 * 16 + 7, 8 * 16 + 8)  # centred
    with pytest.raises(ValueError, match="window"):
        hog_cells(torch.zeros(1, 1, 24, 24), window=16)  # does not tile 24 px
    with pytest.raises(ValueError, match="orientation"):
        hog_cells(torch.zeros(1, 1, 16, 16), orientation="north")
    with pytest.raises(ValueError, match="window"):
        hog_patch_targets(torch.zeros(1, 1, 16, 16), 16, window="box")


def test_patch_targets_gather_the_cells_of_each_patch():
    imgs = torch.randn(2, 3, 32, 48)
    t = hog_patch_targets(imgs, 16)  # MaskFeat's form: Gaussian window of one patch
    assert t.shape == (2, 2 * 3, hog_dim(3, 16)) == (2, 6, 108)
    cells = hog_cells(imgs, window=16)  # [2, 3, 9, 4, 6]
    # patch (row 1, col 2) = index 5; its cell (1, 0) = cell (3, 4) of the image, channel 2
    d = t[1, 5].reshape(2, 2, 3, 9)
    assert torch.allclose(d[1, 0, 2], cells[1, 2, :, 3, 4])
    with pytest.raises(ValueError, match="cell"):
        hog_patch_targets(imgs, 4)
