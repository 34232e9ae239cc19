"""Contrastive learning across the batch samples, CLBS (003, Sec. III-B2, Eq. 7).

Inputs are one code per sample and block, ``h_{i,j}`` [N, d] (``Conv -> GAP -> FC -> ReLU``, Fig. 2,
d = fd_bs; built by ``methods/crosslayer.py``). The deep codes ``h_{.,L}`` of the batch are
clustered into K = ``clbs.k`` clusters (K_BS = 7, the number of expression classes, Fig. 8) by the
same seeded k-means as CLFM (Eq. 2, ``losses/clfm.py: deep_centroids``), or replaced by the batch's
class means (Eq. 12); each shallow block's codes are grouped by cosine similarity to the centroids
and averaged per group (Eq. 3-5, over the samples of the batch instead of the channels of one
sample); Eq. 7: ``L_bs = - sum_j beta_j cos(vec(H_j), vec(psi))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fer_core.losses.clfm import group_means, vec_cosine


def check_batch(k: int, batch_size: int | None) -> None:
    """``clbs.k`` clusters need at least k samples per batch (k-means over the batch)."""
    if batch_size is not None and k > batch_size:
        raise ValueError(
            f"clbs.k={k} is larger than trainer.batch_size={batch_size}: k-means over a batch "
            f"needs at least k samples; allowed: 2 <= clbs.k <= trainer.batch_size"
        )


def clbs_loss(
    shallow: Sequence[torch.Tensor],
    centroids: torch.Tensor,
    beta: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7.

    Args:
        shallow: L-1 tensors h_{.,j} [N, d] (blocks 1 .. L-1).
        centroids: [K, d] centroids of the deep codes h_{.,L}.
        beta: L-1 weights beta_j.
    Returns:
        (loss, cos): loss = ``- sum_j beta_j cos(vec(H_j), vec(psi))`` (scalar), with H_j [K, d]
        the group means of block j's codes; cos [L-1] per block (detached, for logging).
    """
    if len(shallow) != len(beta):
        raise ValueError(f"beta needs one weight per shallow block ({len(shallow)}), got {beta}")
    loss = centroids.new_zeros(())
    cos = []
    for h, b in zip(shallow, beta):
        if h.dim() != 2:
            raise ValueError(f"CLBS codes must be [N, d], got {tuple(h.shape)}")
        c = vec_cosine(group_means(h, centroids), centroids)  # scalar
        cos.append(c.detach())
        if b:
            loss = loss - float(b) * c
    return loss, torch.stack(cos)
