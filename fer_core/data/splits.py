"""Seeded, stratified index utilities: validation carve-out, label fractions, k-fold, balancing.

All functions take hard labels ``[N]`` (long; -1 = unlabelled, treated as its own stratum) and
return index tensors, so they work on any :class:`~fer_core.data.base.FERImageSet`.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import WeightedRandomSampler


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _strata(labels: torch.Tensor) -> list[torch.Tensor]:
    labels = torch.as_tensor(labels, dtype=torch.long)
    return [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]


def stratified_split(
    labels: torch.Tensor, fraction: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (rest, carved) with ``fraction`` of every class carved out.

    Used for ``data.val_fraction``: a class with n samples gives ``round(n * fraction)`` of them
    (at least 1 when n >= 2, never all of them). Returns sorted index tensors.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1) for a carve-out, got {fraction!r}")
    g = _gen(seed)
    rest, carved = [], []
    for idx in _strata(labels):
        n = idx.numel()
        k = min(max(round(n * fraction), 1 if n >= 2 else 0), n - 1)
        perm = idx[torch.randperm(n, generator=g)]
        carved.append(perm[:k])
        rest.append(perm[k:])
    return torch.cat(rest).sort().values, torch.cat(carved).sort().values


def label_fraction_indices(
    labels: torch.Tensor,
    fraction: float | None = None,
    per_class: int | None = None,
    seed: int = 0,
    total: int | None = None,
) -> torch.Tensor:
    """Indices of the labelled subset for semi-supervised runs (``trainer.semi.fraction`` /
    ``.per_class`` / ``.total``; 004 Tables 10, 3 and 4), stratified and seeded; the rest is the
    unlabelled pool. The draw depends on the labels and the seed only, so every method of a study
    gets the same labelled images for one seed.

    Give exactly one of ``fraction`` (in (0, 1], of every class, at least one sample per class),
    ``per_class`` (an integer in 1..the smallest class's count: exactly that many of every class)
    or ``total`` (an integer in 1..N: exactly ``total`` images, shared out in proportion to the
    class sizes by largest remainder, ties to the lower class index). Subsets are nested: for the
    same seed a smaller budget of the same kind is a subset of a larger one. Label -1 (no hard
    label) is a stratum of its own and never counts as the smallest class.
    """
    given = [k for k, v in (("fraction", fraction), ("per_class", per_class), ("total", total))
             if v is not None]  # fmt: skip
    if len(given) != 1:
        raise ValueError(
            "give exactly one of trainer.semi.fraction, trainer.semi.per_class or "
            f"trainer.semi.total, got {', '.join(given) or 'none'}"
        )
    strata = _strata(labels)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(f"trainer.semi.fraction must be in (0, 1], got {fraction!r}")
    if per_class is not None:
        counts = torch.bincount(labels[labels >= 0])
        smallest = int(counts[counts > 0].min()) if bool((counts > 0).any()) else 0
        if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
            raise ValueError(
                f"trainer.semi.per_class must be an integer in 1..{smallest} (the smallest "
                f"class's count), got {per_class!r}"
            )
        if per_class > smallest:
            raise ValueError(
                f"trainer.semi.per_class={per_class} is above the smallest class's count "
                f"({smallest} training images); allowed: 1..{smallest}"
            )
    sizes = torch.tensor([idx.numel() for idx in strata])
    if total is not None:
        n = int(sizes.sum())
        if isinstance(total, bool) or not isinstance(total, int) or not 1 <= total <= n:
            raise ValueError(
                f"trainer.semi.total must be an integer in 1..{n} (the training images), "
                f"got {total!r}"
            )
        share = sizes.double() * total / n
        take = share.floor().long()
        left = total - int(take.sum())
        order = sorted(range(len(strata)), key=lambda i: (-(share[i] - take[i]).item(), i))
        for i in order[:left]:
            take[i] += 1
    g = _gen(seed)
    out = []
    for i, idx in enumerate(strata):
        n = idx.numel()
        if per_class is not None:
            k = min(n, per_class)
        elif total is not None:
            k = int(take[i])
        else:
            k = min(n, max(1, math.ceil(n * fraction)))
        out.append(idx[torch.randperm(n, generator=g)][:k])
    return torch.cat(out).sort().values


def keep_class_indices(
    labels: torch.Tensor, cls: int, keep_fraction: float, seed: int = 0
) -> torch.Tensor:
    """Indices kept when class ``cls`` keeps only ``keep_fraction`` of its samples (003 Table III:
    ``data.drop_class`` / ``data.keep_fraction``): ``round(n * keep_fraction)`` of that class, a
    seeded draw, and every sample of the other classes. Returns a sorted index tensor; for the
    same seed a smaller fraction keeps a subset of a larger one's."""
    if not 0.0 <= float(keep_fraction) < 1.0:
        raise ValueError(f"data.keep_fraction must be in [0, 1), got {keep_fraction!r}")
    labels = torch.as_tensor(labels, dtype=torch.long)
    own = torch.nonzero(labels == int(cls)).flatten()
    k = round(own.numel() * float(keep_fraction))
    kept = own[torch.randperm(own.numel(), generator=_gen(seed))][:k]
    rest = torch.nonzero(labels != int(cls)).flatten()
    return torch.cat([rest, kept]).sort().values


def stratified_kfold(
    labels: torch.Tensor, k: int, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``k`` (train_idx, test_idx) folds; every class is dealt round-robin over the folds.

    The test folds partition ``range(N)``; fold sizes per class differ by at most one.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k (folds) must be an integer >= 2, got {k!r}")
    if k > labels.numel():
        raise ValueError(f"k (folds) = {k} exceeds the number of samples {labels.numel()}")
    g = _gen(seed)
    fold_of = torch.empty(labels.numel(), dtype=torch.long)
    offset = 0
    for idx in _strata(labels):
        perm = idx[torch.randperm(idx.numel(), generator=g)]
        fold_of[perm] = (torch.arange(perm.numel()) + offset) % k
        offset += perm.numel()  # spread the remainders of small classes over different folds
    folds = []
    for f in range(k):
        test = torch.nonzero(fold_of == f).flatten()
        train = torch.nonzero(fold_of != f).flatten()
        folds.append((train, test))
    return folds


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-sample weights 1 / count(class) [N] (unlabelled samples get 0)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    valid = labels >= 0
    counts = torch.bincount(labels[valid], minlength=num_classes).float()
    w = torch.zeros(labels.numel())
    w[valid] = 1.0 / counts[labels[valid]]
    return w


def balanced_sampler(
    labels: torch.Tensor, num_classes: int, num_samples: int | None = None, seed: int = 0
) -> WeightedRandomSampler:
    """A class-balanced sampler (oversampling rare classes, with replacement): each class is
    drawn equally often in expectation. ``num_samples`` defaults to the number of samples."""
    w = class_weights(labels, num_classes)
    n = int(num_samples) if num_samples is not None else int(torch.as_tensor(labels).numel())
    return WeightedRandomSampler(w.double(), n, replacement=True, generator=_gen(seed))


def oversample_indices(labels: torch.Tensor, num_classes: int, seed: int = 0) -> torch.Tensor:
    """Indices that repeat every class up to the size of the largest (deterministic oversampling)."""
    labels = torch.as_tensor(labels, dtype=torch.long)
    g = _gen(seed)
    groups = [torch.nonzero(labels == c).flatten() for c in range(num_classes)]
    target = max(x.numel() for x in groups)
    out = []
    for idx in groups:
        if idx.numel() == 0:
            continue
        reps = idx.repeat(target // idx.numel())
        extra = idx[torch.randperm(idx.numel(), generator=g)[: target - reps.numel()]]
        out.append(torch.cat([reps, extra]))
    return torch.cat(out).sort().values
