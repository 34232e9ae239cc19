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
    pc = label_fraction_indices(LABELS, per_class=5, seed=0)
    assert torch.bincount(LABELS[pc]).tolist() == [5, 5, 5, 5]
    assert set(label_fraction_indices(LABELS, per_class=2, seed=0).tolist()) <= set(pc.tolist())
    with pytest.raises(ValueError, match="exactly one of trainer.semi.fraction"):
        label_fraction_indices(LABELS)
    with pytest.raises(ValueError, match="exactly one .*got fraction, total"):
        label_fraction_indices(LABELS, fraction=0.1, total=10)
    with pytest.raises(ValueError, match=r"trainer.semi.fraction must be in \(0, 1\], got 0"):
        label_fraction_indices(LABELS, fraction=0)
    with pytest.raises(ValueError, match=r"trainer.semi.per_class must be an integer in 1..5"):
        label_fraction_indices(LABELS, per_class=0)


def test_per_class_above_the_smallest_class_is_refused():
    # 004 Table 3's 250 labels per class need every class to have 250 training images
    with pytest.raises(ValueError, match=r"per_class=10 is above the smallest class's count "
                       r"\(5 training images\); allowed: 1..5"):  # fmt: skip
        label_fraction_indices(LABELS, per_class=10)
    with_unlabelled = torch.cat([LABELS, torch.full((3,), -1)])  # -1 is not a class
    assert len(label_fraction_indices(with_unlabelled, per_class=5, seed=0)) == 4 * 5 + 3


@pytest.mark.parametrize("total, expected", [(10, [5, 3, 2, 0]), (40, [20, 12, 6, 2]),
                                             (7, [4, 2, 1, 0]), (100, [50, 30, 15, 5])])  # fmt: skip
def test_total_is_exact_and_proportional(total, expected):
    # 004 Table 4: a total budget (400 / 1000 / 4000) shared out by class size, largest remainder
    # (10: shares 5, 3, 1.5, 0.5 -> 5, 3, 1, 0 + the remainder to the tie 0.5 at the lower class)
    idx = label_fraction_indices(LABELS, total=total, seed=3)
    assert len(idx) == total == len(set(idx.tolist()))
    assert torch.bincount(LABELS[idx], minlength=4).tolist() == expected
    assert torch.equal(idx, label_fraction_indices(LABELS, total=total, seed=3))  # seeded
    assert not torch.equal(
        label_fraction_indices(LABELS, total=40, seed=3),
        label_fraction_indices(LABELS, total=40, seed=4),
    )


def test_total_budgets_are_nested_and_checked():
    small = set(label_fraction_indices(LABELS, total=10, seed=0).tolist())
    assert small <= set(label_fraction_indices(LABELS, total=40, seed=0).tolist())
    for bad in (0, 101, 2.5, True):
        with pytest.raises(ValueError, match=r"trainer.semi.total must be an integer in 1..100"):
            label_fraction_indices(LABELS, total=bad)


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
