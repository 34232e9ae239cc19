"""SimFLE's FFL losses and semantic masking (002 Sec. 3.2-3.3, Eq. 2, 3, 5, 6).

- :func:`grouping_loss`: the channel grouping loss of Eq. 2 on the grouped feature map, in two
  forms (knob ``grouping_form``):

  * ``paper``: ``sum_{g_i != g_j} D(C_i, C_j)^2 - sum_{g_i = g_j} D(C_i, C_j)^2`` with ``D`` the
    cosine similarity of two channels' spatial maps (averaged over the batch), divided by the
    ``C^2`` channel pairs (Eq. 2's plain sum grows with ``C^2``: 4.2 M pairs on ResNet-50's 2048
    channels; the mean keeps ``beta`` comparable across backbones);
  * ``code``: the authors' code (``ChannelGroupingLayer`` + ``MSELoss(g, 0)``):
    ``(0.001 sum_{i,j} (D(C_i, C_j) - G_ij)^2 / (C / 512)^2)^2`` with ``G`` the block-diagonal
    "same group" matrix, i.e. a squared error towards 1 inside a group and 0 across groups,
    itself squared by the MSE against zero.

  Channel ``i`` belongs to group ``i // (C / N_g)`` (contiguous groups, as the code's
  block-diagonal target).
- :func:`patch_scores`: Eq. 3, the mean of the upsampled score map over each ``s x s`` patch.
- :func:`semantic_masking`: the patches are masked in ascending order of their scores (Eq. 3:
  the lowest-scoring first, so the highest-scoring stay visible, as the authors' code's
  ``argsort(descending=True)`` keeps them); ``descending`` is the ablation. Returns MAE's
  ``ids_keep``, ``mask`` (0 keep, 1 remove), ``ids_restore`` like ``models/mim.random_masking``.
- :func:`distillation_loss`: Eq. 5, ``sum_{i in {m, v1, v2}} KL(psi(z_i / t), psi(z_bar / t))``
  with ``z_bar`` the mean of the three, detached (``distil.detach_mean``) as in the authors' code.
  As there (``DistillationLoss``, Hinton et al.) each term is ``F.kl_div(log psi(z_i / t),
  psi(z_bar / t), "batchmean") * t^2``, i.e. ``KL(psi(z_bar / t) || psi(z_i / t))`` per sample,
  averaged over the batch and scaled by ``t^2`` (the paper prints neither the direction nor
  ``t^2``). In this direction the gradient through ``z_bar`` is zero whether or not it is
  detached (``sum_i log psi(z_i / t) = 3 z_bar / t - const``, annihilated by the softmax's
  Jacobian), so ``detach_mean`` changes no update; it stays a knob to mirror the code.

The reconstruction loss (Eq. 4) is MAE's masked MSE, ``fer_core.losses.mim.mae_loss``; the total
(Eq. 6) is ``L_s + L_r + alpha L_d + beta L_g`` (``methods/simfle.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

GROUPING_FORMS = ("paper", "code")
MASK_ORDERS = ("ascending", "descending")
CODE_DENOM = 512.0  # the authors' ChannelGroupingLayer.denom
CODE_SCALE = 0.001  # the authors' weight inside the grouping loss


def group_matrix(channels: int, groups: int, device=None) -> torch.Tensor:
    """``G`` [C, C]: 1 where channels i and j share a group (channel i in group ``i // (C / N_g)``)."""
    if groups < 1 or channels % groups:
        raise ValueError(
            f"method.ffl.groups={groups!r} must be a positive divisor of the backbone's "
            f"{channels} channels"
        )
    g = torch.arange(channels, device=device) // (channels // groups)
    return (g[:, None] == g[None, :]).float()


def channel_similarity(act: torch.Tensor) -> torch.Tensor:
    """``D`` [C, C]: cosine similarity of every two channels' spatial maps, mean over the batch.

    ``act`` [N, C, H, W]; an all-zero map (after ReLU) has similarity 0 with every channel."""
    if act.ndim != 4:
        raise ValueError(
            f"grouping loss expects a feature map [N, C, H, W], got {tuple(act.shape)}"
        )
    x = F.normalize(act.flatten(2), dim=2)  # [N, C, HW]
    return torch.einsum("ncs,nds->cd", x, x) / act.shape[0]


def grouping_loss(act: torch.Tensor, groups: int, form: str = "code") -> torch.Tensor:
    """Eq. 2 on the grouped map ``act`` [N, C, H, W] with ``groups`` groups -> scalar."""
    if form not in GROUPING_FORMS:
        raise ValueError(
            f"method.grouping_form={form!r} is not allowed; use one of {', '.join(GROUPING_FORMS)}"
        )
    c = act.shape[1]
    same = group_matrix(c, groups, act.device)
    d = channel_similarity(act)
    if form == "paper":
        sq = d.pow(2)
        return ((sq * (1.0 - same)).sum() - (sq * same).sum()) / (c * c)
    g = CODE_SCALE * (d - same).pow(2).sum() / (c / CODE_DENOM) ** 2
    return g.pow(2)


def patch_scores(score_map: torch.Tensor, img_size: int, patch: int) -> torch.Tensor:
    """Eq. 3: ``score_map`` [N, 1, h, w] upsampled (bilinear) to ``img_size`` and averaged over
    each ``patch x patch`` patch -> ``a`` [N, L], ``L = (img_size / patch)^2`` in row-major
    order (the order of ``losses/mim.patchify``)."""
    if img_size % patch:
        raise ValueError(
            f"method.ffl.patch={patch!r} must divide the FFL input size {img_size} "
            "(method.ffl.img_size)"
        )
    up = F.interpolate(score_map, size=(img_size, img_size), mode="bilinear", align_corners=False)
    return F.avg_pool2d(up, patch).flatten(1)


def semantic_masking(
    scores: torch.Tensor, mask_ratio: float, order: str = "ascending"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask ``int(L * mask_ratio)``-ish patches by score: ``scores`` [N, L] ->
    ``ids_keep`` [N, K] (``K = int(L * (1 - mask_ratio))``, as MAE), ``mask`` [N, L] (0 keep,
    1 remove) and ``ids_restore`` [N, L]. ``ascending`` masks the lowest scores first."""
    if order not in MASK_ORDERS:
        raise ValueError(
            f"method.ffl.mask_order={order!r} is not allowed; use one of {', '.join(MASK_ORDERS)}"
        )
    n, length = scores.shape
    keep = int(length * (1 - mask_ratio))
    if keep < 1 or keep >= length:
        raise ValueError(
            f"method.ffl.mask_ratio={mask_ratio!r} keeps {keep} of {length} patches; it must keep "
            "at least one and mask at least one"
        )
    # ascending masking = the highest scores are kept: they come first in the shuffle
    ids_shuffle = torch.argsort(
        scores.detach(), dim=1, descending=order == "ascending", stable=True
    )
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(n, length, device=scores.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_shuffle[:, :keep], mask, ids_restore


def distillation_loss(
    zs: Sequence[torch.Tensor], temperature: float = 4.0, detach_mean: bool = True
) -> torch.Tensor:
    """Eq. 5 over the distillation projections ``zs`` (each [N, D]; 002: m, v1, v2) -> scalar."""
    if len(zs) < 2 or any(z.shape != zs[0].shape or z.ndim != 2 for z in zs):
        raise ValueError(
            f"distillation_loss needs two or more [N, D] tensors of one shape, got "
            f"{[tuple(z.shape) for z in zs]}"
        )
    t = float(temperature)
    z_bar = torch.stack(list(zs)).mean(dim=0)
    if detach_mean:
        z_bar = z_bar.detach()
    target = F.softmax(z_bar / t, dim=1)
    terms = [
        F.kl_div(F.log_softmax(z / t, dim=1), target, reduction="batchmean") * t * t for z in zs
    ]
    return torch.stack(terms).sum()
