"""Batches cut from in-memory uint8 splits, shaped by what the method needs (methods/base.py).

No DataLoader: every split is one uint8 tensor (the decoded-image cache), so a batch is an index
into it plus a batch-level augmentation; this keeps the loader far faster than the model.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from fer_core.data.base import FERImageSet
from fer_core.data.transforms import BatchAugment, normalize, resolve_policy
from fer_core.methods.base import MethodNeeds


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    return x.to(device, non_blocking=True)


class BatchMaker:
    """``make(idx, generator) -> batch dict`` for one training split (see methods/base.py)."""

    def __init__(
        self,
        train: FERImageSet,
        needs: MethodNeeds,
        aug: dict,
        device: torch.device,
        unlabelled: FERImageSet | None = None,
        channels_last: bool = False,
    ) -> None:
        self.ds = train
        self.needs = needs
        self.device = device
        aug = {**aug, "policy": resolve_policy(aug.get("policy", "auto"), train.name)}
        self.policy = aug["policy"]
        self.aug = BatchAugment(**aug)
        self.channels_last = channels_last
        self.unlabelled = unlabelled if unlabelled is not None else train
        if needs.unlabelled:
            self.weak = BatchAugment(**{**aug, "policy": "weak"})
            self.strong = BatchAugment(**{**aug, "policy": "strong"})

    def _img(self, x: torch.Tensor) -> torch.Tensor:
        x = _to(x, self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def make(self, idx: torch.Tensor, g: torch.Generator) -> dict:
        ds, needs = self.ds, self.needs
        images = ds.images[idx]
        boxes = ds.boxes[idx] if needs.boxes and ds.boxes is not None else None
        if needs.boxes and boxes is None:  # no face boxes: the whole image
            h, w = images.shape[-2:]
            boxes = torch.tensor([0.0, 0.0, w, h]).expand(len(idx), 4).clone()
        x, boxes = self.aug(images, g, boxes)
        batch: dict = {
            "image": self._img(x),
            "label": _to(ds.labels[idx], self.device),
            "index": _to(idx, self.device),
        }
        if needs.views >= 2:
            views = [batch["image"]]
            for _ in range(needs.views - 1):
                views.append(self._img(self.aug(images, g)[0]))
            batch["views"] = views
        if boxes is not None:
            batch["box"] = _to(boxes.float(), self.device)
        if ds.true_labels is not None:
            batch["true_label"] = _to(ds.true_labels[idx], self.device)
        if ds.votes is not None:
            batch["votes"] = _to(ds.votes[idx].float(), self.device)
        if ds.targets is not None:
            batch["target"] = _to(ds.targets[idx].float(), self.device)
        if needs.unlabelled:
            pool = self.unlabelled
            uidx = torch.randint(0, len(pool), (len(idx),), generator=g)
            u = pool.images[uidx]
            batch["unlabelled"] = {
                "weak": self._img(self.weak(u, g)[0]),
                "strong": self._img(self.strong(u, g)[0]),
                "index": _to(uidx, self.device),
            }
        return batch


def eval_batches(
    ds: FERImageSet, batch_size: int, device: torch.device, channels_last: bool = False
) -> Iterator[dict]:
    """Evaluation batches in index order (no augmentation): image, label, index[, true_label]."""
    for s in range(0, len(ds), batch_size):
        idx = torch.arange(s, min(s + batch_size, len(ds)))
        x = _to(normalize(ds.images[idx]), device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        b = {"image": x, "label": _to(ds.labels[idx], device), "index": _to(idx, device)}
        if ds.true_labels is not None:
            b["true_label"] = _to(ds.true_labels[idx], device)
        if ds.votes is not None:
            b["votes"] = _to(ds.votes[idx].float(), device)
        yield b
