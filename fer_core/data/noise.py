"""Label noise (004 Table 8): ``data.label_noise`` flips a seeded, stratified fraction of the
training labels to another class.

Of every class with n training images, ``round(n * rate)`` are drawn (seeded by ``data.seed``) and
each gets a class drawn uniformly from the other ``num_classes - 1``. Validation and test keep
their labels; so does ``true_labels`` (SynthFER's generating class), so ``val/acc_true`` and
``test/*`` still measure against the truth. Soft ``targets`` of a flipped image become the one-hot
of its new class (``labels`` stays their argmax); FERPlus ``votes`` are left as they are. Images
without a hard label (-1) are never flipped. The data hash names the noise.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from fer_core.data.base import DataSplits


def check_label_noise(rate: float) -> float:
    """``data.label_noise`` in [0, 1), else a ``ValueError`` naming the knob."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ValueError(
            f"data.label_noise must be a number in [0, 1) (004 Table 8: 0, 0.1, 0.2, 0.3), "
            f"got {rate!r}"
        )
    return float(rate)


def noisy_labels(
    labels: torch.Tensor, num_classes: int, rate: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(new labels [N], flipped [N] bool)``: ``round(n_c * rate)`` images of every class c
    moved to a uniformly drawn other class (seeded). For one seed a smaller rate flips a subset
    of a larger rate's images (the draw order per class does not depend on the rate)."""
    rate = check_label_noise(rate)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if num_classes < 2:
        raise ValueError(f"data.label_noise needs at least 2 classes, got {num_classes}")
    g = torch.Generator().manual_seed(int(seed))
    out, flipped = labels.clone(), torch.zeros_like(labels, dtype=torch.bool)
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        order = idx[torch.randperm(idx.numel(), generator=g)]
        shift = torch.randint(1, num_classes, (idx.numel(),), generator=g)  # never 0: another class
        k = round(idx.numel() * rate)
        out[order[:k]] = (c + shift[:k]) % num_classes
        flipped[order[:k]] = True
    return out, flipped


def apply_label_noise(splits: DataSplits, rate: float, seed: int = 0) -> DataSplits:
    """``splits`` with noisy training labels (module docstring); ``rate`` 0 returns them as is."""
    rate = check_label_noise(rate)
    if rate == 0.0:
        return splits
    train = splits.train
    labels, flipped = noisy_labels(train.labels, splits.num_classes, rate, seed)
    targets = train.targets
    if targets is not None and bool(flipped.any()):
        targets = targets.clone()
        targets[flipped] = F.one_hot(labels[flipped], targets.shape[1]).to(targets.dtype)
    return DataSplits(
        train=dataclasses.replace(train, labels=labels, targets=targets, meta=dict(train.meta)),
        val=splits.val,
        test=splits.test,
        num_classes=splits.num_classes,
        val_is_official=splits.val_is_official,
        data_hash=f"{splits.data_hash}-noise-{rate:g}-{int(seed)}",
    )
