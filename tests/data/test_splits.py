"""Stratified carve-out, label fractions, k-fold, class balancing."""

from __future__ import annotations

import pytest
import torch

from fer_core.data.splits import (
    balanced_sampler,
    label_fraction_indices,
    oversample_indices,
    stratified_kfold,
    stratified_split,
)

LABELS = torch.tensor([0] * 50 + [1] * 30 + [2] * 15 + [3] * 5)


def test_stratified_split():
    rest, val = stratified_split(LABELS, 0.2, seed=0)
    assert torch.cat([rest, val]).sort().values.tolist() == list(range(100))
    assert torch.bincount(LABELS[val]).tolist() == [10, 6, 3, 1]
    assert torch.equal(val, stratified_split(LABELS, 0.2, seed=0)[1])
    assert not torch.equal(val, stratified_split(LABELS, 0.2, seed=1)[1])
    with pytest.raises(ValueError, match="val_fraction"):
        stratified_split(LABELS, 1.0)


def test_label_fractions():
    idx = label_fraction_indices(LABELS, fraction=0.1, seed=0)
    assert torch.bincount(LABELS[idx]).tolist() == [5, 3, 2, 1]
    big = label_fraction_indices(LABELS, fraction=0.5, seed=0)
    assert set(idx.tolist()) <= set(big.tolist())  # nested for one seed
    pc = label_fraction_indices(LABELS, per_class=10, seed=0)
    assert torch.bincount(LABELS[pc]).tolist() == [10, 10, 10, 5]
    with pytest.raises(ValueError, match="exactly one"):
        label_fraction_indices(LABELS)
    with pytest.raises(ValueError, match="labels.fraction"):
        label_fraction_indices(LABELS, fraction=0)
    with pytest.raises(ValueError, match="labels.per_class"):
        label_fraction_indices(LABELS, per_class=0)


def test_stratified_kfold():
    folds = stratified_kfold(LABELS, 5, seed=0)
    tests = torch.cat([t for _, t in folds]).sort().values
    assert tests.tolist() == list(range(100))
    for train, test in folds:
        assert len(set(train.tolist()) & set(test.tolist())) == 0 and len(train) + len(test) == 100
        per = torch.bincount(LABELS[test], minlength=4)
        assert per[0] == 10 and per[1] == 6 and per[2] == 3 and per[3] == 1
    with pytest.raises(ValueError, match="k"):
        stratified_kfold(LABELS, 1)


def test_balancing():
    s = balanced_sampler(LABELS, 4, num_samples=4000, seed=0)
    drawn = torch.bincount(LABELS[torch.tensor(list(s))], minlength=4).float()
    assert (drawn / 4000 - 0.25).abs().max() < 0.04
    over = oversample_indices(LABELS, 4)
    assert torch.bincount(LABELS[over]).tolist() == [50, 50, 50, 50]
