"""Partial-label learning loss and confidence updates (001, Sec. III-A and III-C.2, Eq. 1, 3-4).

Every sample ``i`` has a candidate set ``Y_i`` (bool [C]) and a confidence vector ``C_i`` (float
[C], a distribution supported on ``Y_i``, uniform at start). Three pieces live here, as small pure
functions plus one ``nn.Module``:

- :func:`pll_loss`, Eq. 1: cross-entropy of the softmax of the logits against ``C_i``.
- :func:`revise_confidence`, Eq. 3-4: the top-2 of ``phi * C_prev`` (``phi = sigmoid(logits)``);
  where their gap exceeds ``threshold`` the confidence becomes one-hot on the top-1 class.
- :func:`rc_confidence`: the classifier-guided re-weighting of the RC / PRODEN baselines of
  001 Table I (Feng et al. 2020, Lv et al. 2020): ``softmax(logits)`` masked to ``Y_i`` and
  renormalised.

Reference values D1 and D2 (design notes) are tests of :func:`pll_loss` and :func:`rc_confidence`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CONFIDENCE_UPDATES = ("revision", "rc", "none")


def uniform_confidence(candidates: torch.Tensor) -> torch.Tensor:
    """``C_i = Y_i / |Y_i|`` (Sec. III-C.2): float [N, C] from bool candidates [N, C].

    Rows with an empty candidate set stay all-zero (they contribute nothing to Eq. 1).
    """
    cand = candidates.to(torch.float32)
    return cand / cand.sum(dim=1, keepdim=True).clamp_min(1.0)


def pll_loss(
    logits: torch.Tensor, confidence: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 1: ``mean_i sum_j -C_ij log softmax(z_i)_j``.

    Args:
        logits: [N, C] class scores (the softmax layer zeta of Eq. 1 is applied here).
        confidence: [N, C] confidence vectors, rows summing to 1 (not differentiated through).
        weight: optional [N] per-sample weights (e.g. 0 for samples without any candidate); the
            result is then ``sum_i w_i l_i / sum_i w_i``.
    Returns:
        scalar loss. With one-hot confidence it equals ``F.cross_entropy``.
    """
    if logits.shape != confidence.shape or logits.dim() != 2:
        raise ValueError(
            f"logits and confidence must both be [N, C], got {tuple(logits.shape)} and "
            f"{tuple(confidence.shape)}"
        )
    per_sample = -(confidence.detach() * F.log_softmax(logits, dim=1)).sum(dim=1)  # [N]
    if weight is None:
        return per_sample.mean()
    weight = weight.to(per_sample.dtype)
    return (per_sample * weight).sum() / weight.sum().clamp_min(1e-12)


def revise_confidence(
    phi: torch.Tensor, confidence: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Revision confidence, Eq. 3-4.

    ``(id1: v1, id2: v2) = Top2[phi * C_prev]`` (Eq. 3); if ``|v1 - v2| > threshold`` the new
    confidence is one-hot on ``id1``, else ``C_prev`` is kept (Eq. 4). A threshold >= 1 therefore
    never revises (phi * C <= 1), and a threshold of 0 revises every sample whose top-2 differ.

    Args:
        phi: [N, C] sigmoid responses of the decoder logits (values in [0, 1]).
        confidence: [N, C] the previous confidence ``C_prev``.
        threshold: the revision threshold (>= 0).
    Returns:
        (new confidence [N, C], revised bool [N]); ``revised`` marks the rows whose confidence
        changed (a row that is already one-hot on ``id1`` is not counted again).
    """
    if phi.shape != confidence.shape or phi.dim() != 2 or phi.shape[1] < 2:
        raise ValueError(
            f"phi and confidence must both be [N, C] with C >= 2, got {tuple(phi.shape)} and "
            f"{tuple(confidence.shape)}"
        )
    if threshold < 0:
        raise ValueError(f"revision.threshold must be >= 0, got {threshold!r}")
    score = phi * confidence  # [N, C]
    top = score.topk(2, dim=1)
    gap = (top.values[:, 0] - top.values[:, 1]).abs()  # [N]  Delta v
    one_hot = F.one_hot(top.indices[:, 0], confidence.shape[1]).to(confidence.dtype)
    # Only rows with some confidence can be revised (an empty set has score 0 everywhere).
    flip = (gap > threshold) & (confidence.sum(dim=1) > 0)
    new = torch.where(flip[:, None], one_hot, confidence)
    changed = flip & (new != confidence).any(dim=1)
    return new, changed


def rc_confidence(logits: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Classifier-guided confidence of RC / PRODEN: ``softmax(z)`` masked to ``Y_i``, renormalised.

    Args:
        logits: [N, C] (detached by the caller or not; the result is detached).
        candidates: bool [N, C].
    Returns:
        [N, C] confidence; a row with an empty candidate set is all-zero.
    """
    if logits.shape != candidates.shape:
        raise ValueError(
            f"logits and candidates must have the same shape, got {tuple(logits.shape)} and "
            f"{tuple(candidates.shape)}"
        )
    prob = F.softmax(logits.detach().float(), dim=1) * candidates.to(torch.float32)
    return prob / prob.sum(dim=1, keepdim=True).clamp_min(1e-12)


class PLLLoss(nn.Module):
    """Eq. 1 as a module: ``PLLLoss()(logits [N, C], confidence [N, C]) -> scalar``."""

    def forward(
        self, logits: torch.Tensor, confidence: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        return pll_loss(logits, confidence, weight)
