"""The in-memory dataset every loader produces, and the canonical class vocabulary.

Contract (docs/API.md): every dataset, SynthFER or real, is decoded once into uint8 tensors of a
fixed size (the decoded-image cache) and served as a :class:`FERImageSet`.  A sample is a dict::

    {"image": uint8 [C, H, W], "label": int (-1 = none/unknown), "index": int,
     "votes": float [10] (8 emotions + unknown + NF, FERPlus order; absent if the dataset has none),
     "true_label": int (SynthFER only, else absent), "box": float [4] x1, y1, x2, y2 in pixels of
     the stored image (absent if unknown), "target": float [num_classes] (the soft label of a
     FERPlus label mode; absent for hard-label datasets)}

The whole-split tensors are also attributes (``labels``, ``votes``, ``true_labels``, ``boxes``),
so methods that keep per-sample state (PLL candidate sets) read them by dataset index without
iterating the images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

# FERPlus column order; the canonical vocabulary of the whole project.
CLASS_NAMES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
VOTE_COLUMNS: tuple[str, ...] = CLASS_NAMES + ("unknown", "NF")


def class_names(num_classes: int) -> tuple[str, ...]:
    """The first ``num_classes`` canonical names (7 drops contempt, RAF-DB style)."""
    if num_classes not in (7, 8):
        raise ValueError(f"num_classes must be 7 or 8, got {num_classes!r}")
    return CLASS_NAMES[:num_classes]


@dataclass
class FERImageSet(Dataset):
    """One split of a FER dataset, decoded to uint8 tensors.

    Shapes: ``images`` [N, C, H, W] uint8; ``labels`` [N] long (-1 = no hard label);
    ``votes`` [N, 10] float or None; ``true_labels`` [N] long or None; ``boxes`` [N, 4] float or None;
    ``landmarks`` [N, 68, 2] float or None; ``targets`` [N, num_classes] float or None (soft
    labels, rows sum to 1; ``labels`` is their argmax).
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    votes: torch.Tensor | None = None
    true_labels: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None
    name: str = ""
    split: str = ""
    meta: dict = field(default_factory=dict)
    targets: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}"
            )
        for attr in ("labels", "votes", "true_labels", "boxes", "landmarks", "targets"):
            t = getattr(self, attr)
            if t is not None and t.shape[0] != n:
                raise ValueError(f"{attr} has {t.shape[0]} rows but there are {n} images")

    @property
    def class_names(self) -> tuple[str, ...]:
        return class_names(self.num_classes)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict:
        sample = {"image": self.images[i], "label": int(self.labels[i]), "index": i}
        if self.votes is not None:
            sample["votes"] = self.votes[i]
        if self.true_labels is not None:
            sample["true_label"] = int(self.true_labels[i])
        if self.boxes is not None:
            sample["box"] = self.boxes[i]
        if self.targets is not None:
            sample["target"] = self.targets[i]
        return sample

    def subset(self, idx: torch.Tensor, split: str | None = None) -> FERImageSet:
        """A new set holding rows ``idx`` (indices are renumbered 0..len(idx)-1)."""
        idx = torch.as_tensor(idx, dtype=torch.long)

        def take(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[idx]

        return FERImageSet(
            images=self.images[idx],
            labels=self.labels[idx],
            num_classes=self.num_classes,
            votes=take(self.votes),
            true_labels=take(self.true_labels),
            boxes=take(self.boxes),
            landmarks=take(self.landmarks),
            name=self.name,
            split=split or self.split,
            meta=dict(self.meta),
            targets=take(self.targets),
        )


@dataclass
class DataSplits:
    """train / val / test of one dataset; ``val_is_official`` False when val was carved from train."""

    train: FERImageSet
    val: FERImageSet
    test: FERImageSet
    num_classes: int
    val_is_official: bool = True
    data_hash: str = ""


def reduce_class(
    splits: DataSplits, drop_class: str | None, keep_fraction: float = 0.0, seed: int = 0
) -> DataSplits:
    """003 Table III's unseen class: the training split keeps ``keep_fraction`` (0, 0.1, 0.3) of
    class ``drop_class`` (a class name; ``None``: unchanged); validation and test are untouched,
    the head keeps every class. The data hash names the reduction."""
    if drop_class is None:
        if not 0.0 <= float(keep_fraction) < 1.0:
            raise ValueError(f"data.keep_fraction must be in [0, 1), got {keep_fraction!r}")
        return splits
    names = class_names(splits.num_classes)
    if drop_class not in names:
        raise ValueError(
            f"data.drop_class {drop_class!r} is not a class of this dataset; allowed: "
            f"{', '.join(names)} (or null)"
        )
    from fer_core.data.splits import keep_class_indices

    cls = names.index(drop_class)
    idx = keep_class_indices(splits.train.labels, cls, keep_fraction, seed)
    return DataSplits(
        train=splits.train.subset(idx),
        val=splits.val,
        test=splits.test,
        num_classes=splits.num_classes,
        val_is_official=splits.val_is_official,
        data_hash=f"{splits.data_hash}-drop-{drop_class}-{float(keep_fraction):g}",
    )
