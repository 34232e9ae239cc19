"""Supervised contrastive loss (000, Eq. 6; Khosla et al. 2020, the paper's ref. [28]).

The form of the authors' reference implementation (``SupConLoss`` of HobbitLong/SupContrast,
``contrast_mode="all"``): every view of every sample is an anchor; an anchor's denominator runs over
all other views in the batch (itself excluded); its loss is the mean over its positives of
``-log softmax``, scaled by ``temperature / base_temperature``; an anchor without positives
contributes 0 and still counts in the mean over anchors. Reference values A1-A3 (design notes)
are tests of :func:`supcon_loss`.

The positives may be given as an explicit weight mask instead of labels (MSCL, 000 Eq. 11-13,
builds one from mixed labels: ``fer_core/losses/mscl.py``); :func:`contrastive_loss` is the core
for anchors and a contrast set that differ (anchors ``[A, D]``, candidates ``[K, D]``).

No maintained library loss fits: lightly 1.6.0 has no supervised contrastive loss (checked).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_temperatures(temperature: float, base_temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"tau (the temperature) must be > 0, got {temperature!r}")
    if not base_temperature > 0:
        raise ValueError(f"base_tau (the base temperature) must be > 0, got {base_temperature!r}")


def contrastive_loss(
    anchors: torch.Tensor,
    contrast: torch.Tensor,
    positives: torch.Tensor,
    exclude: torch.Tensor | None = None,
    *,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
) -> torch.Tensor:
    """Mean over anchors of ``-(T / T_b) * sum_p w_ip log softmax_k(a_i . c_k / T)_p / sum_p w_ip``.

    Args:
        anchors: [A, D] anchor features (L2-normalised by the caller where wanted).
        contrast: [K, D] candidate features (positives and negatives).
        positives: [A, K] non-negative positive weights (a 0/1 mask in SupCon and MSCL).
        exclude: optional bool [A, K]: pairs left out of the denominator and of the positives
            (an anchor paired with itself when the anchors are part of the contrast set).
        temperature, base_temperature: ``T`` and ``T_b`` (> 0).
    Returns:
        scalar loss. An anchor whose positive weights sum to 0 contributes 0 (and counts).
    """
    _check_temperatures(temperature, base_temperature)
    if anchors.dim() != 2 or contrast.dim() != 2 or anchors.shape[1] != contrast.shape[1]:
        raise ValueError(
            f"anchors and contrast must be [A, D] and [K, D], got {tuple(anchors.shape)} and "
            f"{tuple(contrast.shape)}"
        )
    shape = (anchors.shape[0], contrast.shape[0])
    if tuple(positives.shape) != shape:
        raise ValueError(f"positives must be [A, K] = {list(shape)}, got {tuple(positives.shape)}")
    pos = positives.to(anchors.dtype)
    logits = anchors @ contrast.T / temperature  # [A, K]
    if exclude is not None:
        if tuple(exclude.shape) != shape:
            raise ValueError(f"exclude must be [A, K] = {list(shape)}, got {tuple(exclude.shape)}")
        if bool(exclude.all(dim=1).any()):
            raise ValueError(
                "contrastive loss: an anchor has no other sample to contrast with (a batch of "
                "one sample); use a batch size >= 2"
            )
        pos = pos.masked_fill(exclude, 0.0)
        denom = torch.logsumexp(logits.masked_fill(exclude, float("-inf")), dim=1, keepdim=True)
    else:
        denom = torch.logsumexp(logits, dim=1, keepdim=True)
    log_prob = logits - denom  # [A, K]
    n_pos = pos.sum(dim=1)
    n_pos = torch.where(n_pos < 1e-6, torch.ones_like(n_pos), n_pos)  # no positives -> 0
    mean_log_prob_pos = (pos * log_prob).sum(dim=1) / n_pos
    return -(temperature / base_temperature) * mean_log_prob_pos.mean()


def supcon_loss(
    features: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    mask: torch.Tensor | None = None,
    temperature: float = 0.07,
    base_temperature: float = 0.07,
) -> torch.Tensor:
    """Eq. 6 over a multiview batch.

    Args:
        features: [N, V, D] features of V views of N samples (normalise them first).
        labels: [N] class labels: positives share the anchor's label (Eq. 8).
        mask: [N, N] positive weights between samples instead of labels (``mask[i, j]``: weight
            of sample j as a positive of anchor i); tiled over the views. Neither labels nor mask:
            each sample's own other views are its only positives (SimCLR, Eq. 5).
        temperature, base_temperature: ``tau`` and SupCon's base temperature (> 0).
    Returns:
        scalar loss (the mean over the N * V anchors).
    """
    if features.dim() != 3:
        raise ValueError(f"features must be [N, V, D], got {tuple(features.shape)}")
    n, v, _ = features.shape
    if labels is not None and mask is not None:
        raise ValueError("give labels or mask, not both")
    if labels is not None:
        labels = labels.reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"labels must be [N] = [{n}], got {tuple(labels.shape)}")
        mask = (labels[:, None] == labels[None, :]).to(features.dtype)
    elif mask is None:
        mask = torch.eye(n, dtype=features.dtype, device=features.device)
    elif tuple(mask.shape) != (n, n):
        raise ValueError(f"mask must be [N, N] = [{n}, {n}], got {tuple(mask.shape)}")
    flat = torch.cat(torch.unbind(features, dim=1), dim=0)  # [V*N, D], view-major
    eye = torch.eye(n * v, dtype=torch.bool, device=features.device)
    return contrastive_loss(
        flat,
        flat,
        mask.to(features.dtype).repeat(v, v),
        eye,
        temperature=temperature,
        base_temperature=base_temperature,
    )


class SupConLoss(nn.Module):
    """Eq. 6 as a module: ``SupConLoss(tau)(features [N, V, D], labels [N]) -> scalar``.

    Features are L2-normalised here (``normalize=True``), as the projection head of 000 does.
    """

    def __init__(
        self, temperature: float = 0.07, base_temperature: float = 0.07, normalize: bool = True
    ) -> None:
        super().__init__()
        _check_temperatures(temperature, base_temperature)
        self.temperature = float(temperature)
        self.base_temperature = float(base_temperature)
        self.normalize = bool(normalize)

    def forward(
        self,
        features: torch.Tensor,
        labels: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return supcon_loss(
            features,
            labels,
            mask=mask,
            temperature=self.temperature,
            base_temperature=self.base_temperature,
        )
