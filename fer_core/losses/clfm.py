"""Contrastive learning on feature maps, CLFM (003, Sec. III-B1, Eq. 2-6, and Eq. 12's centres).

Inputs are the latent codes of Eq. 1, ``g_{i,j}`` [N, C_j, d] (one d = fd_fm vector per channel c
of block j; built by ``methods/crosslayer.py``). The math, as pure functions:

- deep centroids (Eq. 2): k-means over the channel codes of the last block of the whole batch,
  ``{g_{i,L}^{(c)}}`` ([N * C_L, d] points), into K = ``clfm.k`` clusters: :func:`deep_centroids`;
  or, with ``centers: class_center`` (Eq. 12, Table VI), the per-mini-batch class means:
  :func:`class_centroids`;
- Eq. 3-4: each shallow channel code goes to the centroid of highest cosine similarity:
  :func:`assign_groups`;
- Eq. 5: the shallow centre of group k of sample i on block j is the mean of its members (an empty
  group is the zero vector): :func:`group_means`;
- Eq. 6: ``L_fm^(i) = - sum_j alpha_j cos(vec(I_{i,j}), vec(phi))``: :func:`clfm_loss` (mean over
  the samples of the batch; see ``methods/crosslayer.py`` for the reduction of Eq. 10).

``detach_targets`` (a knob of the method): the paper back-propagates through the centroids
(phi_k is the mean of its members, Eq. 2 second line); the authors' public code (CCLLS) does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fer_core.losses.kmeans import cluster_means, kmeans


def assign_groups(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Eq. 3-4: points [..., M, d], centroids [K, d] -> index [..., M] of the most cosine-similar
    centroid (``m_{c,k} = cos(g^(c), phi_k)``, ``k = argmax_p m_{c,p}``; no gradient)."""
    with torch.no_grad():
        sim = (
            F.normalize(points.detach().float(), dim=-1)
            @ F.normalize(centroids.detach().float(), dim=-1).t()
        )
        return sim.argmax(-1)


def group_means(points: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Eq. 5: points [..., M, d], centroids [K, d] -> shallow centres [..., K, d].

    Centre k is the mean of the points assigned to centroid k by :func:`assign_groups`; an empty
    group is the zero vector (it then adds nothing to Eq. 6's dot product)."""
    k = centroids.shape[0]
    onehot = F.one_hot(assign_groups(points, centroids), k).to(points.dtype)  # [..., M, K]
    counts = onehot.sum(-2)  # [..., K]
    sums = onehot.transpose(-1, -2) @ points  # [..., K, d]
    return sums / counts.clamp(min=1).unsqueeze(-1)


def vec_cosine(centres: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Eq. 6, second line: centres [..., K, d], centroids [K, d] -> [...]:
    ``vec(I) . vec(phi) / (||vec(I)||_2 ||vec(phi)||_2)``."""
    a = centres.flatten(-2)
    b = centroids.flatten().to(a.dtype)
    return F.cosine_similarity(a, b.expand_as(a), dim=-1, eps=1e-8)


def deep_centroids(
    points: torch.Tensor,
    k: int,
    *,
    iters: int = 10,
    generator: torch.Generator | None = None,
    detach: bool = False,
) -> torch.Tensor:
    """Eq. 2: points [M, d] (the deep codes) -> centroids [k, d] by seeded k-means.

    With ``detach=False`` each centroid is the mean of its members *with* gradient (the paper);
    ``detach=True`` returns the k-means centroids as constants (the authors' code)."""
    centroids, assign = kmeans(points, k, iters=iters, generator=generator)
    if detach:
        return centroids.to(points.dtype)
    return cluster_means(points, assign, k, centroids)


def class_centroids(
    points: torch.Tensor, labels: torch.Tensor, *, detach: bool = False
) -> torch.Tensor:
    """Eq. 12: ``Center^(t) = (1 / n_t) sum_i 1[t = y_i] g_{i,L}`` for the classes in the batch.

    points [N, d] (CLBS: one code per sample) or [N, C, d] (CLFM: a sample's channel codes, each
    class centre is then the mean over the class's samples and their channels), labels [N]
    (-1 = unlabelled, left out) -> [T, d], one row per class present, in class order."""
    if points.shape[0] != labels.shape[0]:
        raise ValueError(f"points [N, ...] and labels [N] differ: {points.shape} vs {labels.shape}")
    p = points.detach() if detach else points
    rows = []
    for t in torch.unique(labels[labels >= 0]).tolist():
        rows.append(p[labels == t].reshape(-1, p.shape[-1]).mean(0))
    if not rows:
        raise ValueError("centers=class_center needs at least one labelled sample in the batch")
    return torch.stack(rows)


def clfm_loss(
    shallow: Sequence[torch.Tensor],
    centroids: torch.Tensor,
    alpha: Sequence[float],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 6 averaged over the batch.

    Args:
        shallow: L-1 tensors g_{.,j} [N, C_j, d] (blocks 1 .. L-1).
        centroids: [K, d] deep centroids (Eq. 2 or Eq. 12).
        alpha: L-1 weights alpha_j.
    Returns:
        (loss, cos): loss = mean_i ``- sum_j alpha_j cos(vec(I_{i,j}), vec(phi))`` (scalar);
        cos [L-1] the per-block cosine averaged over the batch (detached, for logging).
    """
    if len(shallow) != len(alpha):
        raise ValueError(f"alpha needs one weight per shallow block ({len(shallow)}), got {alpha}")
    loss = centroids.new_zeros(())
    cos = []
    for g, a in zip(shallow, alpha):
        c = vec_cosine(group_means(g, centroids), centroids)  # [N]
        cos.append(c.detach().mean())
        if a:
            loss = loss - float(a) * c.mean()
    return loss, torch.stack(cos)
