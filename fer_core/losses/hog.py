"""Histograms of oriented gradients in torch: MaskFeat's prediction target (001 Sec. III, Fig. 3).

MaskFeat (Wei et al., 2022), which 001 uses for pre-training, predicts the HOG descriptor of each
masked patch.  As in MaskFeat's ``HOGLayerC``: gradients per colour channel, unsigned orientation
quantised into ``bins`` (9) hard bins over [0, 180) degrees weighted by the gradient magnitude,
pooled over ``cell`` x ``cell`` (8) pixel cells, each cell's histogram L2-normalised per channel,
then the cells of a patch are gathered into that patch's target vector.

Choices, as knobs of :func:`hog_cells` / :func:`hog_patch_targets` (the method's ``hog.*``):

- ``gradient="sobel"`` (MaskFeat; reflect padding) or ``"central"`` (``[-1, 0, 1]`` differences with
  zero gradients on the border rows/columns, as ``skimage.feature.hog``).
- ``orientation="maskfeat"``: ``HOGLayerC`` computes ``phase = atan2(gx, gy)`` with its Sobel
  ``gx`` along columns and ``gy`` along rows, i.e. the angle ``phi = atan2(g_cols, g_rows) mod 180``
  measured from the row axis, which is ``90 - theta`` for skimage's
  ``theta = atan2(g_rows, g_cols) mod 180`` (``orientation="skimage"``). With 20-degree bins the
  two put their bin edges 10 degrees apart. Bin ``i`` holds ``[i * 180 / bins, (i + 1) * 180 / bins)``
  of the chosen angle.
- ``window``: MaskFeat (``HOGLayerC(nbins=9, pool=8, gaussian_window=16)``) weights each pixel's
  magnitude by a 2-d Gaussian window of 16 px with ``std = 16 // 2 = 8`` (``get_gkern``), tiled
  over the image from its origin, one window per 16-px ViT patch. :func:`hog_cells` takes the
  window side in pixels (``None``: no window); :func:`hog_patch_targets` takes
  ``window="gaussian"`` (a window of one patch, ``std = patch // 2``) or ``"none"``.
- Cell pooling is the *mean* over the cell's pixels and the normalisation is ``h / sqrt(|h|^2 +
  eps^2)`` with ``eps = 1e-5``, which is skimage's ``block_norm="L2"`` with ``cells_per_block=(1, 1)``;
  MaskFeat sums and divides by ``max(|h|, 1e-12)``: the two agree up to the eps term, since the
  normalisation removes the scale.  With ``gradient="central"``, ``orientation="skimage"`` and no
  window a single-channel image gives exactly ``skimage.feature.hog(img, orientations=9,
  pixels_per_cell=(8, 8), cells_per_block=(1, 1), block_norm="L2", feature_vector=False)`` (tested).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

GRADIENTS = ("sobel", "central")
ORIENTATIONS = ("maskfeat", "skimage")
WINDOWS = ("gaussian", "none")
HOG_EPS = 1e-5


def _gradients(x: torch.Tensor, gradient: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel gradients along rows and columns: [N, C, H, W] -> two [N, C, H, W]."""
    n, c, h, w = x.shape
    if gradient == "sobel":
        k_col = torch.tensor(
            [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device
        )
        k_row = k_col.t()
        weight = torch.stack([k_row, k_col]).unsqueeze(1)  # [2, 1, 3, 3]
        flat = F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="reflect")
        g = F.conv2d(flat, weight).reshape(n, c, 2, h, w)
        return g[:, :, 0], g[:, :, 1]
    if gradient == "central":
        g_row = torch.zeros_like(x)
        g_col = torch.zeros_like(x)
        g_row[:, :, 1:-1, :] = x[:, :, 2:, :] - x[:, :, :-2, :]
        g_col[:, :, :, 1:-1] = x[:, :, :, 2:] - x[:, :, :, :-2]
        return g_row, g_col
    raise ValueError(f"hog gradient must be one of {GRADIENTS}, got {gradient!r}")


def gaussian_window(size: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """MaskFeat's ``get_gkern(size, size // 2)``: [size, size], centred, summing to 1."""
    n = torch.arange(size, dtype=dtype, device=device)
    g = torch.exp(-0.5 * ((n - n.mean()) / (size // 2)) ** 2)
    k = g[:, None] * g[None, :]
    return k / k.sum()


def hog_cells(
    images: torch.Tensor,
    *,
    bins: int = 9,
    cell: int = 8,
    gradient: str = "sobel",
    orientation: str = "maskfeat",
    window: int | None = None,
    eps: float = HOG_EPS,
) -> torch.Tensor:
    """HOG per channel and cell: [N, C, H, W] -> [N, C, bins, H // cell, W // cell].

    Each (channel, cell) histogram is L2-normalised over its ``bins``. Pixels beyond the last full
    cell are ignored (as skimage does). ``window``: side in pixels of MaskFeat's Gaussian window
    (``std = window // 2``), tiled from the origin; it must divide H and W. ``None``: no window.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"hog orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    if images.ndim != 4:
        raise ValueError(f"hog expects images [N, C, H, W], got shape {tuple(images.shape)}")
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"hog bins must be a positive integer, got {bins!r}")
    if not isinstance(cell, int) or cell < 1:
        raise ValueError(f"hog cell must be a positive integer (pixels), got {cell!r}")
    n, c, h, w = images.shape
    if h < cell or w < cell:
        raise ValueError(f"hog cell {cell} is larger than the image {h}x{w}")
    x = images if images.is_floating_point() else images.float()
    g_row, g_col = _gradients(x, gradient)
    magnitude = torch.hypot(g_row, g_col)
    if window is not None:
        if not isinstance(window, int) or window < 2 or h % window or w % window:
            raise ValueError(
                f"hog window must be an integer >= 2 dividing the image size {h}x{w}, got {window!r}"
            )
        kern = gaussian_window(window, x.dtype, x.device).repeat(h // window, w // window)
        magnitude = magnitude * kern
    if orientation == "maskfeat":
        theta = torch.remainder(torch.rad2deg(torch.atan2(g_col, g_row)), 180.0)
    else:
        theta = torch.remainder(torch.rad2deg(torch.atan2(g_row, g_col)), 180.0)
    index = torch.floor(theta / (180.0 / bins)).long().clamp_(0, bins - 1)  # [N, C, H, W]
    hist = torch.zeros(n, c, bins, h, w, dtype=x.dtype, device=x.device)
    hist.scatter_(2, index.unsqueeze(2), magnitude.unsqueeze(2))
    hh, ww = (h // cell) * cell, (w // cell) * cell
    hist = hist[..., :hh, :ww].reshape(n, c * bins, hh, ww)
    cells = F.avg_pool2d(hist, cell).reshape(n, c, bins, hh // cell, ww // cell)
    return cells / torch.sqrt(cells.pow(2).sum(dim=2, keepdim=True) + eps**2)


def hog_patch_targets(
    images: torch.Tensor,
    patch_size: int,
    *,
    bins: int = 9,
    cell: int = 8,
    gradient: str = "sobel",
    orientation: str = "maskfeat",
    window: str = "gaussian",
) -> torch.Tensor:
    """MaskFeat targets: the HOG cells of each patch gathered, [N, C, H, W] -> [N, L, D].

    ``L = (H / p) * (W / p)`` in row-major patch order; ``D = C * bins * (p / cell)^2`` ordered as
    (cell row, cell column, channel, bin). ``patch_size`` must be a multiple of ``cell``.
    ``window="gaussian"``: MaskFeat's Gaussian window over each patch (``std = p // 2``).
    """
    if window not in WINDOWS:
        raise ValueError(f"hog window must be one of {WINDOWS}, got {window!r}")
    p = int(patch_size)
    if p % cell:
        raise ValueError(
            f"hog cell {cell} must divide the patch size {p} (MaskFeat gathers whole cells per "
            "patch); use method.hog.cell equal to the patch size or a divisor of it"
        )
    n, c, h, w = images.shape
    if h % p or w % p:
        raise ValueError(f"patch size {p} must divide the image size {h}x{w}")
    k = p // cell
    cells = hog_cells(
        images,
        bins=bins,
        cell=cell,
        gradient=gradient,
        orientation=orientation,
        window=p if window == "gaussian" else None,
    )  # [N, C, B, gh*k, gw*k]
    gh, gw = h // p, w // p
    x = cells.reshape(n, c, bins, gh, k, gw, k)
    x = x.permute(0, 3, 5, 4, 6, 1, 2)  # [N, gh, gw, k, k, C, B]
    return x.reshape(n, gh * gw, k * k * c * bins)


def hog_dim(channels: int, patch_size: int, bins: int = 9, cell: int = 8) -> int:
    """Length of one patch's HOG target vector (see :func:`hog_patch_targets`)."""
    return channels * bins * int(math.pow(patch_size // cell, 2))
