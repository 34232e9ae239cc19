"""Batches cut from in-memory uint8 splits, shaped by what the method needs (methods/base.py).

No DataLoader: every split is one uint8 tensor (the decoded-image cache) or an index view over one
(``data/base.py``'s ``IndexedImages``), so a batch is an index into it (a gather) plus per-sample
augmentation by named policies (``fer_core/data/augment.py``,
``fer_core/conf/aug/``); this keeps the loader far faster than the model.

Views: a method that declares ``views`` (a list of policy names, e.g. ``[simclr, simclr]``,
overridable as ``method.views=[weak,strong]``) gets one view per name; otherwise every view uses
``trainer.aug.policy`` (``auto``: none on SynthFER, ``crop_flip`` on real data), on the CPU or, with
``trainer.aug.device: auto``, on the trial's device (uint8 batches moved first). Face boxes follow
every geometric transform of every view. Where they come from: a method whose ``needs`` carries a
``box_source`` (``annotated | detector | full``, its ``boxes.source`` knob, e.g. ``ssfer``) gets
``data/boxes.py``'s ``face_boxes(split, box_source)``, computed once per split; without one, the
dataset's boxes, or the whole image where it has none. The unlabelled stream (``needs.unlabelled``) draws
``trainer.semi.unlabelled_ratio`` unlabelled samples per labelled one, without replacement within
an epoch, each with its own views (``trainer.semi.unlabelled_views``, default ``[weak, strong]``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from fer_core.data.augment import load_policy
from fer_core.data.base import FERImageSet
from fer_core.data.boxes import face_boxes
from fer_core.data.transforms import normalize, resolve_policy
from fer_core.methods.base import MethodNeeds


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """To ``device``; from pinned host memory when it is CUDA, so the copy is asynchronous."""
    if device.type == "cuda" and x.device.type == "cpu":
        x = x.pin_memory()
    return x.to(device, non_blocking=True)


def view_names(
    views: Sequence[str] | None, needs: MethodNeeds, policy: str, dataset: str
) -> list[str]:
    """The policy of each view: ``method.views`` when the method declares them, else
    ``trainer.aug.policy`` (resolved for ``dataset``) for every view. Checks names and length."""
    if views is None:
        names = [resolve_policy(policy, dataset)] * max(1, int(needs.views))
        where = "trainer.aug.policy"
    else:
        names = [str(v) for v in views]
        where = "method.views"
        if len(names) != int(needs.views):
            raise ValueError(
                f"method.views has {len(names)} polic{'y' if len(names) == 1 else 'ies'} "
                f"{names}, but the method needs {needs.views} view(s); give exactly {needs.views}"
            )
    for n in dict.fromkeys(names):
        try:
            load_policy(n)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
    return names


def unlabelled_settings(semi: dict) -> tuple[float, list[str]]:
    """``(trainer.semi.unlabelled_ratio, trainer.semi.unlabelled_views)``, checked (their
    defaults live in ``conf/trainer/default.yaml`` only)."""
    ratio = semi["unlabelled_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        raise ValueError(f"trainer.semi.unlabelled_ratio must be a number > 0, got {ratio!r}")
    views = semi["unlabelled_views"]
    for n in dict.fromkeys(views):
        try:
            load_policy(str(n))
        except ValueError as e:
            raise ValueError(f"trainer.semi.unlabelled_views: {e}") from e
    return float(ratio), [str(v) for v in views]


class BatchMaker:
    """``make(idx, generator) -> batch dict`` for one training split (see methods/base.py).

    Call ``start_epoch(generator)`` before an epoch's first batch (the unlabelled stream's order).
    ``aug_on_device`` (``trainer.aug.device: auto``): the uint8 images go to ``device`` first and
    are augmented there (the draws stay on the CPU generator: the same batches as on the CPU).
    """

    def __init__(
        self,
        train: FERImageSet,
        needs: MethodNeeds,
        aug: dict,
        device: torch.device,
        unlabelled: FERImageSet | None = None,
        channels_last: bool = False,
        views: Sequence[str] | None = None,
        semi: dict | None = None,
        aug_on_device: bool = False,
    ) -> None:
        self.ds = train
        self.aug_on_device = aug_on_device
        self.needs = needs
        self.device = device
        self.policy = resolve_policy(aug["policy"], train.name)
        self.views = view_names(views, needs, aug["policy"], train.name)
        self._policies = {n: load_policy(n) for n in self.views}
        self.channels_last = channels_last
        self.unlabelled = unlabelled if unlabelled is not None else train
        self.u_ratio, self.u_views = 1.0, []
        if needs.unlabelled:
            self.u_ratio, self.u_views = unlabelled_settings(semi)
            self._policies.update({n: load_policy(n) for n in self.u_views})
        self._uperm: torch.Tensor | None = None
        self._upos = 0
        # boxes.source (needs.box_source): each split's boxes, computed once (the detector is slow)
        self.box_source: str | None = needs.box_source
        self._box_table: dict[int, torch.Tensor] = {}

    def _img(self, x: torch.Tensor) -> torch.Tensor:
        x = _to(x, self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _source(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images where the policies run: the device (aug_on_device) or the CPU."""
        return _to(images, self.device) if self.aug_on_device else images

    def _boxes(self, ds: FERImageSet, idx: torch.Tensor, n_hw: tuple[int, int]) -> torch.Tensor:
        if self.box_source is not None:
            table = self._box_table.get(id(ds))
            if table is None:
                table = self._box_table[id(ds)] = face_boxes(ds, self.box_source)
            return table[idx].float()
        if ds.boxes is not None:
            return ds.boxes[idx].float()
        h, w = n_hw  # no face boxes: the whole image
        return torch.tensor([0.0, 0.0, float(w), float(h)]).expand(len(idx), 4).clone()

    def _views(self, images, names, g, boxes):
        xs, bs = [], []
        for name in names:
            x, b = self._policies[name](images, g, boxes)
            xs.append(self._img(x))
            bs.append(None if b is None else _to(b.float(), self.device))
        return xs, bs

    def start_epoch(self, g: torch.Generator) -> None:
        """A new order of the unlabelled pool (sampling without replacement within an epoch)."""
        if self.needs.unlabelled:
            self._uperm, self._upos = torch.randperm(len(self.unlabelled), generator=g), 0

    def _next_unlabelled(self, n: int, g: torch.Generator) -> torch.Tensor:
        out = []
        while n > 0:
            if self._uperm is None or self._upos >= len(self._uperm):
                self._uperm, self._upos = torch.randperm(len(self.unlabelled), generator=g), 0
            take = self._uperm[self._upos : self._upos + n]
            self._upos += len(take)
            n -= len(take)
            out.append(take)
        return torch.cat(out)

    def make(self, idx: torch.Tensor, g: torch.Generator) -> dict:
        ds, needs = self.ds, self.needs
        images = self._source(ds.images[idx])
        boxes = self._boxes(ds, idx, images.shape[-2:]) if needs.boxes else None
        views, vboxes = self._views(images, self.views, g, boxes)
        batch: dict = {
            "image": views[0],
            "label": _to(ds.labels[idx], self.device),
            "index": _to(idx, self.device),
        }
        if needs.views >= 2:
            batch["views"] = views
        if needs.boxes:
            batch["box"], batch["boxes"] = vboxes[0], vboxes
        if ds.true_labels is not None:
            batch["true_label"] = _to(ds.true_labels[idx], self.device)
        if ds.votes is not None:
            batch["votes"] = _to(ds.votes[idx].float(), self.device)
        if ds.targets is not None:
            batch["target"] = _to(ds.targets[idx].float(), self.device)
        if needs.unlabelled:
            pool = self.unlabelled
            uidx = self._next_unlabelled(max(1, round(self.u_ratio * len(idx))), g)
            u = self._source(pool.images[uidx])
            ub = self._boxes(pool, uidx, u.shape[-2:]) if needs.boxes else None
            uviews, uboxes = self._views(u, self.u_views, g, ub)
            ubatch: dict = {"views": uviews, "index": _to(uidx, self.device)}
            if pool.true_labels is not None:  # SynthFER: for pseudo-label accuracy, never a loss
                ubatch["true_label"] = _to(pool.true_labels[uidx], self.device)
            if needs.boxes:
                ubatch["boxes"] = uboxes
            if len(set(self.u_views)) == len(self.u_views):  # by name, e.g. "weak", "strong"
                ubatch.update(zip(self.u_views, uviews))
            batch["unlabelled"] = ubatch
        return batch


def eval_batches(
    ds: FERImageSet, batch_size: int, device: torch.device, channels_last: bool = False
) -> Iterator[dict]:
    """Evaluation batches in index order (no augmentation): image, label, index[, true_label]."""
    for s in range(0, len(ds), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(ds)))
        x = normalize(_to(ds.images[idx], device))  # uint8 over the bus, 4x fewer bytes
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        b = {"image": x, "label": _to(ds.labels[idx], device), "index": _to(idx, device)}
        if ds.true_labels is not None:
            b["true_label"] = _to(ds.true_labels[idx], device)
        if ds.votes is not None:
            b["votes"] = _to(ds.votes[idx].float(), device)
        yield b
