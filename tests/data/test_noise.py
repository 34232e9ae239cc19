"""Label noise (004 Table 8): seeded, stratified flips to another class; val/test/true untouched."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fer_core.data import build_splits
from fer_core.data.noise import apply_label_noise, noisy_labels

LABELS = torch.tensor([0] * 50 + [1] * 30 + [2] * 15 + [3] * 5 + [-1] * 4)


@pytest.mark.parametrize("rate, flips", [(0.1, [5, 3, 2, 0]), (0.3, [15, 9, 4, 2])])
def test_exact_stratified_counts_and_always_another_class(rate, flips):
    new, flipped = noisy_labels(LABELS, 4, rate, seed=0)
    per_class = [int((flipped & (LABELS == c)).sum()) for c in range(4)]
    assert per_class == flips  # round(n_c * rate) of every class (15 * 0.1 = 1.5 -> 2)
    assert bool((new[flipped] != LABELS[flipped]).all())  # to another class
    assert bool((new[~flipped] == LABELS[~flipped]).all())
    assert bool((new[LABELS == -1] == -1).all()) and not bool(flipped[LABELS == -1].any())
    assert new.min() >= -1 and new.max() < 4


def test_seeded_and_nested():
    a, fa = noisy_labels(LABELS, 4, 0.2, seed=1)
    b, fb = noisy_labels(LABELS, 4, 0.2, seed=1)
    assert torch.equal(a, b) and torch.equal(fa, fb)
    assert not torch.equal(fa, noisy_labels(LABELS, 4, 0.2, seed=2)[1])
    small = noisy_labels(LABELS, 4, 0.1, seed=1)[1]
    assert bool((fa | ~small).all())  # 10 % flips a subset of 20 %'s images


def test_zero_is_the_identity_and_bad_rates_are_refused():
    new, flipped = noisy_labels(LABELS, 4, 0.0)
    assert torch.equal(new, LABELS) and not bool(flipped.any())
    for bad in (-0.1, 1.0, 1.5, "0.1", True):
        with pytest.raises(ValueError, match=r"data.label_noise must be a number in \[0, 1\)"):
            noisy_labels(LABELS, 4, bad)


def test_synthfer_keeps_the_true_class_and_clean_evaluation():
    kw = dict(n_train=200, n_val=30, n_test=30, img_size=16, label_source="true")
    clean = build_splits("synthfer", **kw)
    noisy = build_splits("synthfer", label_noise=0.3, **kw)
    assert torch.equal(noisy.train.true_labels, clean.train.true_labels)
    assert torch.equal(clean.train.labels, clean.train.true_labels)  # label_source=true
    wrong = int((noisy.train.labels != noisy.train.true_labels).sum())
    counts = torch.bincount(clean.train.labels, minlength=7)
    assert wrong == sum(round(int(n) * 0.3) for n in counts)
    assert torch.equal(noisy.val.labels, clean.val.labels)
    assert torch.equal(noisy.test.labels, clean.test.labels)
    assert noisy.data_hash != clean.data_hash and "noise-0.3" in noisy.data_hash
    with pytest.raises(ValueError, match="data.label_noise"):
        build_splits("synthfer", label_noise=1.0, **kw)


def test_soft_targets_of_flipped_images_follow_the_new_class():
    kw = dict(n_train=60, n_val=10, n_test=10, img_size=16)
    splits = build_splits("synthfer", **kw)
    soft = torch.softmax(
        torch.randn(len(splits.train), 7, generator=torch.Generator().manual_seed(0)), 1
    )
    train = dataclasses.replace(splits.train, targets=soft)
    clean = dataclasses.replace(splits, train=train)
    noisy = apply_label_noise(clean, 0.5, seed=0)
    flipped = noisy.train.labels != train.labels
    assert bool(flipped.any())
    assert torch.equal(noisy.train.targets.argmax(1)[flipped], noisy.train.labels[flipped])
    assert torch.equal(noisy.train.targets[~flipped], soft[~flipped])
