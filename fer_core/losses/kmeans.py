"""Seeded k-means in torch (003, Eq. 2): the deep centroids of CLFM and CLBS, once per mini-batch.

``kmeans(points [M, d], k, iters=, generator=) -> (centroids [k, d], assign [M])`` minimises Eq. 2's
``sum_k sum_{g in zeta_k} ||g - phi_k||_2^2`` by Lloyd's iterations from a k-means++ start. It runs
on the points' device (distances and means), and every random draw (the k-means++ seeds) comes from
``generator`` (the trial's ``StepContext.generator``, a CPU generator: the draws are made on the CPU
and only the chosen indices move), so a seeded trial clusters the same way on any device. The
points are detached: the clustering chooses groups; the gradient of Eq. 2's second line (a
centroid is the mean of its members) is :func:`cluster_means`'s.

Why not a library: scikit-learn's ``KMeans`` runs on the CPU on numpy arrays (a device-to-host copy
per step on a GPU and no torch generator); lightly 1.6.0 has no k-means. A few dozen lines of torch
meet both requirements (the trial's device, the trial's generator).
"""

from __future__ import annotations

import torch


def check_k(name: str, k: object) -> int:
    """``k`` (a number of clusters) must be an integer >= 2; the message names the knob."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"{name} (number of clusters) must be an integer >= 2, got {k!r}")
    return k


def check_iters(iters: object) -> int:
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"kmeans.iters (Lloyd iterations) must be an integer >= 1, got {iters!r}")
    return iters


def _plus_plus(x: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k-means++ seeding: indices [k] of the initial centroids (draws on the CPU generator)."""
    m = x.shape[0]
    first = int(torch.randint(m, (1,), generator=generator))
    idx = [first]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        w = d2.double().cpu()
        if float(w.sum()) <= 0:  # every point coincides with a chosen centroid: uniform draw
            w = torch.ones(m, dtype=torch.float64)
        nxt = int(torch.multinomial(w, 1, generator=generator))
        idx.append(nxt)
        d2 = torch.minimum(d2, ((x - x[nxt]) ** 2).sum(1))
    return torch.tensor(idx, device=x.device)


def _nearest(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index [M] of each point's nearest centroid in squared Euclidean distance
    (``||c||^2 - 2 x.c``: the ``||x||^2`` term does not change the arg-min; one matmul)."""
    return ((centroids * centroids).sum(1)[None, :] - 2.0 * x @ centroids.t()).argmin(1)


@torch.no_grad()
def kmeans(
    points: torch.Tensor,
    k: int,
    *,
    iters: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means with k-means++ seeding (Eq. 2).

    Args:
        points: [M, d] (detached inside); M >= k.
        k: number of clusters (>= 2).
        iters: Lloyd iterations (stops early once the assignment no longer changes).
        generator: CPU ``torch.Generator`` for the seeding draws (None: the global RNG).
    Returns:
        centroids [k, d] (float32, on the points' device; a cluster that empties keeps its last
        centroid) and assign [M] (long, the nearest centroid of each point, squared Euclidean).
    """
    if points.dim() != 2:
        raise ValueError(f"points must be [M, d], got {tuple(points.shape)}")
    check_k("k", k)
    check_iters(iters)
    x = points.detach().float()
    m = x.shape[0]
    if m < k:
        raise ValueError(f"k-means needs at least k={k} points, got {m}")
    centroids = x[_plus_plus(x, k, generator)].clone()
    assign = _nearest(x, centroids)
    for _ in range(iters):
        # one-hot matmul, not bincount / index_add_: those are non-deterministic on CUDA
        onehot = torch.nn.functional.one_hot(assign, k).to(x.dtype)  # [M, k]
        counts = onehot.sum(0)  # [k]
        sums = onehot.t() @ x  # [k, d]
        keep = counts > 0
        centroids = torch.where(keep[:, None], sums / counts.clamp(min=1)[:, None], centroids)
        new = _nearest(x, centroids)
        if torch.equal(new, assign):
            break
        assign = new
    return centroids, assign


def cluster_means(
    points: torch.Tensor, assign: torch.Tensor, k: int, fallback: torch.Tensor
) -> torch.Tensor:
    """Eq. 2, second line: phi_k = mean of the points assigned to cluster k, with gradient.

    points [M, d], assign [M] in [0, k), fallback [k, d] (used, detached, for an empty cluster)
    -> [k, d].
    """
    onehot = torch.nn.functional.one_hot(assign, k).to(points.dtype)  # [M, k]
    counts = onehot.sum(0)
    means = (onehot.t() @ points) / counts.clamp(min=1)[:, None]
    return torch.where((counts > 0)[:, None], means, fallback.detach().to(points.dtype))
