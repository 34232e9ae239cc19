"""Engine test helpers: tiny random splits and a tiny-model override list."""

from __future__ import annotations

import pytest
import torch

from fer_core.data.base import DataSplits, FERImageSet

TINY = [
    "model=vit_tiny_cpu",
    "model.embed_dim=32",
    "model.depth=1",
    "model.num_heads=2",
    "trainer.batch_size=16",
    "trainer.eval_batch_size=64",
    "sched.warmup_epochs=0",
]


def random_set(n: int, seed: int, size: int = 32, num_classes: int = 7) -> FERImageSet:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    images = torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)
    # a learnable signal: a bright bar whose row encodes the class
    for c in range(num_classes):
        rows = slice(2 + 4 * c, 4 + 4 * c)
        images[labels == c, :, rows, :] = 255
    votes = torch.zeros(n, 10)
    votes[torch.arange(n), labels] = 7.0
    votes[torch.arange(n), (labels + 1) % num_classes] += 3.0
    boxes = torch.tensor([4.0, 4.0, size - 4.0, size - 4.0]).expand(n, 4).clone()
    return FERImageSet(images=images, labels=labels, num_classes=num_classes, votes=votes,
                       true_labels=labels.clone(), boxes=boxes, name="random")  # fmt: skip


def tiny_splits(n_train: int = 96) -> DataSplits:
    return DataSplits(
        train=random_set(n_train, 0), val=random_set(48, 1), test=random_set(48, 2),
        num_classes=7, val_is_official=True, data_hash="random-tiny",
    )  # fmt: skip


@pytest.fixture(scope="session")
def splits() -> DataSplits:
    return tiny_splits()
