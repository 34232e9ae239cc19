"""Subsets, folds, fractions and carved-out validation are index views over one storage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_core.data.base import FERImageSet, IndexedImages, concat
from fer_core.data.decoded import finish_splits, load_split, save_split


def _set(n: int = 20) -> FERImageSet:
    g = torch.Generator().manual_seed(0)
    return FERImageSet(
        images=torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
        labels=torch.arange(n) % 4,
        num_classes=7,
        boxes=torch.rand(n, 4, generator=g),
        name="t",
        split="train",
    )


def _same_storage(view, parent: torch.Tensor) -> bool:
    return view.base.untyped_storage().data_ptr() == parent.untyped_storage().data_ptr()


def test_subset_holds_no_copy_of_the_images():
    ds = _set()
    idx = torch.tensor([3, 1, 7, 7])
    sub = ds.subset(idx)
    assert isinstance(sub.images, IndexedImages)
    assert _same_storage(sub.images, ds.images)  # the parent's storage ...
    assert torch.equal(sub.images.rows, idx)  # ... plus an index
    assert sub.images.shape == (4, 3, 8, 8) and len(sub) == 4
    assert torch.equal(sub.images[torch.arange(4)], ds.images[idx])
    assert torch.equal(sub[2]["image"], ds.images[7])
    assert torch.equal(sub.labels, ds.labels[idx]) and torch.equal(sub.boxes, ds.boxes[idx])
    # a view of a view composes the indices, still over the first storage
    subsub = sub.subset(torch.tensor([0, 2]))
    assert _same_storage(subsub.images, ds.images)
    assert torch.equal(subsub.images.rows, torch.tensor([3, 7]))


def test_subset_of_a_memory_mapped_split_shares_its_pages(tmp_path):
    save_split(_set(), tmp_path / "train.pt")
    ds = load_split(tmp_path / "train.pt", name="t", split="train", num_classes=7)
    sub = ds.subset(torch.tensor([5, 0]))
    assert _same_storage(sub.images, ds.images)
    save_split(sub, tmp_path / "sub.pt")  # writing a view writes just its rows
    back = load_split(tmp_path / "sub.pt", name="t", split="train", num_classes=7)
    assert torch.equal(back.images, ds.images[torch.tensor([5, 0])])


def test_whole_split_readers_get_the_selected_rows():
    ds = _set()
    sub = ds.subset(torch.tensor([4, 2]))
    want = ds.images[torch.tensor([4, 2])]
    assert torch.equal(torch.cat([sub.images, sub.images]), torch.cat([want, want]))
    assert torch.equal(sub.images.float(), want.float())
    assert np.array_equal(np.asarray(sub.images), want.numpy())
    assert sub.images.flatten(1).shape == (2, 3 * 8 * 8)


def test_carved_validation_and_its_pool_are_views_of_train():
    ds, test = _set(40), _set(8)
    splits = finish_splits({"train": ds, "test": test}, {"num_classes": 7}, "k", val_fraction=0.25, seed=0)  # fmt: skip
    assert _same_storage(splits.train.images, ds.images)
    assert _same_storage(splits.val.images, ds.images)
    assert len(splits.train) + len(splits.val) == 40
    rows = torch.cat([splits.train.images.rows, splits.val.images.rows])
    assert sorted(rows.tolist()) == list(range(40))  # disjoint and complete
    pool = concat(splits.train, splits.val)  # k-fold's pool: still a view
    assert _same_storage(pool.images, ds.images) and len(pool) == 40
    assert torch.equal(pool.images[torch.arange(40)], ds.images[rows])


def test_concat_of_two_storages_copies():
    a, b = _set(4), _set(3)
    pool = concat(a, b)
    assert isinstance(pool.images, torch.Tensor) and pool.images.shape[0] == 7
    assert torch.equal(pool.images[4:], b.images)


def test_bad_rows_are_refused():
    with pytest.raises(ValueError, match="rows must index"):
        IndexedImages(torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.tensor([3]))
