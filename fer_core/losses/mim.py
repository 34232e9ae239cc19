"""Masked-image-modelling losses: MAE pixel reconstruction (004 / 000 Eq. 2) and masked-token MSE.

MAE (He et al., 2022; pre-training stage of 000 and 004): the decoder predicts the pixels of every
patch, the loss is the mean squared error on the *masked* patches only.  With ``norm_pix_loss`` the
target of each patch is its pixels normalised by the patch's own mean and unbiased variance
(``(t - mean) / sqrt(var + 1e-6)``), as in the MAE reference code.

Shapes: ``imgs`` [N, C, H, W]; ``patchify`` gives [N, L, p*p*C] with ``L = (H/p) * (W/p)`` patches in
row-major order and the pixels of a patch in (row, column, channel) order (MAE's ``nchpwq ->
nhwpqc``); ``mask`` [N, L] with 0 = kept (visible), 1 = removed (masked).
"""

from __future__ import annotations

import torch

NORM_PIX_EPS = 1e-6


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into patches: [N, C, H, W] -> [N, L, p*p*C] (MAE's pixel order)."""
    if imgs.ndim != 4:
        raise ValueError(f"patchify expects images [N, C, H, W], got shape {tuple(imgs.shape)}")
    n, c, h, w = imgs.shape
    p = int(patch_size)
    if p <= 0 or h % p or w % p:
        raise ValueError(
            f"patch_size {patch_size!r} must be a positive divisor of the image size {h}x{w}"
        )
    gh, gw = h // p, w // p
    x = imgs.reshape(n, c, gh, p, gw, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, gh * gw, p * p * c)


def unpatchify(
    patches: torch.Tensor, patch_size: int, channels: int, grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """Inverse of :func:`patchify`: [N, L, p*p*C] -> [N, C, gh*p, gw*p] (square grid if ``grid`` is None)."""
    n, length, dim = patches.shape
    p = int(patch_size)
    if dim != p * p * channels:
        raise ValueError(
            f"patches of dim {dim} do not match patch_size {p} and {channels} channels"
        )
    if grid is None:
        g = int(round(length**0.5))
        grid = (g, g)
    gh, gw = grid
    if gh * gw != length:
        raise ValueError(f"{length} patches do not fill a {gh}x{gw} grid")
    x = patches.reshape(n, gh, gw, p, p, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)
    return x.reshape(n, channels, gh * p, gw * p)


def normalize_patches(target: torch.Tensor, eps: float = NORM_PIX_EPS) -> torch.Tensor:
    """Per-patch normalisation of MAE's ``norm_pix_loss``: [N, L, D] -> [N, L, D].

    Mean and *unbiased* variance over the last dimension (``torch.var``'s default, as in MAE).
    """
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    return (target - mean) / (var + eps) ** 0.5


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE averaged over the feature dimension, then over the masked tokens only.

    ``pred``, ``target`` [N, L, D]; ``mask`` [N, L] (1 = masked). Returns a scalar.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if mask.shape != pred.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} must be [N, L] = {tuple(pred.shape[:2])}")
    per_token = (pred - target).pow(2).mean(dim=-1)  # [N, L]
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp_min(1.0)


def mae_loss(
    imgs: torch.Tensor,
    pred: torch.Tensor,
    mask: torch.Tensor,
    patch_size: int,
    norm_pix_loss: bool = True,
) -> torch.Tensor:
    """MAE reconstruction loss (004; 000 Eq. 2): MSE on masked patches only.

    ``imgs`` [N, C, H, W]; ``pred`` [N, L, p*p*C]; ``mask`` [N, L] (0 keep, 1 remove).
    ``norm_pix_loss`` normalises each target patch by its mean and unbiased variance (eps 1e-6).
    """
    target = patchify(imgs, patch_size)
    if norm_pix_loss:
        target = normalize_patches(target)
    return masked_mse(pred, target, mask)
