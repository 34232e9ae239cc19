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

Subsets (label fractions, k-fold folds, carved-out validation, a reduced class) never copy the
images: ``subset`` gives an :class:`IndexedImages` view, the parent's (memory-mapped) storage plus
an index tensor, gathered per batch (``ds.images[idx]``). Trials on one machine therefore share the
pages of the decoded-image cache (``benchmarks/bench_memory.py`` measures it). The small per-sample
tensors (labels, votes, boxes, ...) are copied.
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


class IndexedImages:
    """Rows ``rows`` of a uint8 [M, C, H, W] storage tensor ``base``, without copying them.

    ``view[idx]`` gathers ``base[rows[idx]]`` (one batch); ``shape``, ``dtype``, ``len`` and
    ``dim()`` are free. Anything else a tensor has (``torch.cat``, ``.float()``, ``.numpy()``,
    ``np.asarray``) works on :meth:`materialize`, a copy of the selected rows: whole-split readers
    keep working, and only they pay for a copy.
    """

    def __init__(self, base: torch.Tensor, rows: torch.Tensor) -> None:
        rows = torch.as_tensor(rows, dtype=torch.long)
        if rows.dim() != 1:
            raise ValueError(f"rows must be a 1-D index tensor, got shape {tuple(rows.shape)}")
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= base.shape[0]):
            raise ValueError(f"rows must index 0..{base.shape[0] - 1}, got {int(rows.min())}..{int(rows.max())}")  # fmt: skip
        self.base, self.rows = base, rows

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.rows.numel(), *self.base.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def ndim(self) -> int:
        return self.base.dim()

    def dim(self) -> int:
        return self.base.dim()

    def size(self, d: int | None = None):
        return self.shape if d is None else self.shape[d]

    def __len__(self) -> int:
        return self.rows.numel()

    def __getitem__(self, idx) -> torch.Tensor:
        return self.base[self.rows[idx]]

    def take(self, idx: torch.Tensor) -> IndexedImages:
        """A view of rows ``idx`` of this view (same storage; the indices compose)."""
        return IndexedImages(self.base, self.rows[torch.as_tensor(idx, dtype=torch.long)])

    def materialize(self) -> torch.Tensor:
        """A copy of the selected rows, [N, C, H, W] uint8."""
        return self.base[self.rows]

    def __array__(self, dtype=None, copy=None):
        a = self.materialize().numpy()
        return a if dtype is None else a.astype(dtype)

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("base", "rows"):
            raise AttributeError(name)
        return getattr(self.materialize(), name)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        def real(x):
            if isinstance(x, IndexedImages):
                return x.materialize()
            if isinstance(x, (list, tuple)):
                return type(x)(real(v) for v in x)
            return x

        return func(*real(args), **{k: real(v) for k, v in (kwargs or {}).items()})

    def __repr__(self) -> str:
        return f"IndexedImages(rows={self.rows.numel()} of {self.base.shape[0]}, shape={tuple(self.shape)})"


def image_view(images: torch.Tensor | IndexedImages, idx: torch.Tensor) -> IndexedImages:
    """Rows ``idx`` of ``images`` as a view over the same storage (views of views compose)."""
    if isinstance(images, IndexedImages):
        return images.take(idx)
    return IndexedImages(images, idx)


def class_names(num_classes: int) -> tuple[str, ...]:
    """The first ``num_classes`` canonical names (7 drops contempt, RAF-DB style)."""
    if num_classes not in (7, 8):
        raise ValueError(f"num_classes must be 7 or 8, got {num_classes!r}")
    return CLASS_NAMES[:num_classes]


@dataclass
class FERImageSet(Dataset):
    """One split of a FER dataset, decoded to uint8 tensors.

    Shapes: ``images`` [N, C, H, W] uint8 (a tensor, or an :class:`IndexedImages` view over a
    parent's storage after ``subset``: index it per batch); ``labels`` [N] long (-1 = no hard label);
    ``votes`` [N, 10] float or None; ``true_labels`` [N] long or None; ``boxes`` [N, 4] float or None;
    ``landmarks`` [N, 68, 2] float or None; ``targets`` [N, num_classes] float or None (soft
    labels, rows sum to 1; ``labels`` is their argmax).
    """

    images: torch.Tensor | IndexedImages
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
        """A new set holding rows ``idx`` (indices are renumbered 0..len(idx)-1). Its images are
        an :class:`IndexedImages` view over this set's storage (no copy); the other per-sample
        tensors are copied (they are small)."""
        idx = torch.as_tensor(idx, dtype=torch.long)

        def take(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[idx]

        return FERImageSet(
            images=image_view(self.images, idx),
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


def concat(a: FERImageSet, b: FERImageSet, split: str = "pool") -> FERImageSet:
    """``a`` then ``b`` as one set (k-fold's train + val pool). Over one storage (both views of
    the same split, e.g. a carved-out validation) the result is a view too; otherwise the images
    are concatenated (a copy)."""

    def cat(x, y):
        return None if x is None or y is None else torch.cat([x, y])

    def parts(ds: FERImageSet) -> tuple[torch.Tensor, torch.Tensor]:
        im = ds.images
        if isinstance(im, IndexedImages):
            return im.base, im.rows
        return im, torch.arange(im.shape[0])

    (ba, ra), (bb, rb) = parts(a), parts(b)
    if ba is bb or (
        ba.untyped_storage().data_ptr() == bb.untyped_storage().data_ptr()
        and ba.shape == bb.shape
        and ba.stride() == bb.stride()
        and ba.storage_offset() == bb.storage_offset()
    ):
        images: torch.Tensor | IndexedImages = IndexedImages(ba, torch.cat([ra, rb]))
    else:
        images = torch.cat([a.images, b.images])
    return FERImageSet(
        images=images, labels=torch.cat([a.labels, b.labels]), num_classes=a.num_classes,
        votes=cat(a.votes, b.votes), true_labels=cat(a.true_labels, b.true_labels),
        boxes=cat(a.boxes, b.boxes), landmarks=cat(a.landmarks, b.landmarks), name=a.name,
        split=split, meta=dict(a.meta), targets=cat(a.targets, b.targets),
    )  # fmt: skip


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
