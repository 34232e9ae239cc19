"""Cross-entropy classification: the baseline of every paper (hard or soft labels).

Knobs (``conf/method/ce.yaml``): ``label_smoothing`` (torch's), ``soft_labels`` (train against
the dataset's soft targets or, without any, the normalised emotion votes), ``class_balanced``
(inverse class-frequency weights, normalised to mean 1 over the classes present), ``dropout``
before the linear head.

FERPlus label modes (``data.label_mode``; the training set carries it as ``meta["label_mode"]``)
train as Microsoft's reference code does (:mod:`fer_core.losses.ferplus`), whatever
``soft_labels`` says, since the reference's ``training_mode`` fixes both target and loss:
``majority`` hard cross-entropy; ``crossentropy`` (and this project's ``votes``) cross-entropy
against the soft target; ``probability`` a one-hot label drawn from the target each time a sample
is used (the trial's generator); ``multi_target`` ``-log max_k (t'_k p_k)`` over the kept classes
(no class weights or label smoothing: the reference has neither).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fer_core.losses.ferplus import multi_target_loss, sample_labels
from fer_core.methods.base import Method, StepContext, StepOutput, TrainContext, register_method
from fer_core.models.heads import ClassifierHead


@register_method("ce")
class CrossEntropy(Method):
    """Linear head on the pooled backbone feature, trained with (weighted, smoothed) CE."""

    own_metrics = ("train/ce",)

    def __init__(
        self,
        backbone,
        num_classes: int,
        *,
        label_smoothing: float = 0.0,
        soft_labels: bool = False,
        class_balanced: bool = False,
        dropout: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"method.label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.head = ClassifierHead(backbone.num_features, num_classes, dropout=float(dropout))
        self.label_smoothing = float(label_smoothing)
        self.soft_labels = bool(soft_labels)
        self.class_balanced = bool(class_balanced)
        self.register_buffer("class_weight", torch.ones(num_classes), persistent=False)
        self.label_mode: str | None = None  # the training set's FERPlus label mode, if any

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.backbone.pooled(images))

    def on_train_start(self, ctx: TrainContext) -> None:
        self.label_mode = (getattr(ctx.train_set, "meta", None) or {}).get("label_mode")
        if not self.class_balanced:
            return
        labels = ctx.train_set.labels
        counts = torch.bincount(labels[labels >= 0], minlength=self.num_classes).float()
        w = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
        self.class_weight = (w * (counts > 0).sum() / w.sum()).to(self.class_weight.device)

    def _soft_target(self, batch: dict) -> torch.Tensor | None:
        if "target" in batch:
            return batch["target"].float()
        if "votes" in batch:
            v = batch["votes"][:, : self.num_classes].float()
            s = v.sum(dim=1, keepdim=True)
            return torch.where(
                s > 0, v / s.clamp(min=1e-12), torch.full_like(v, 1 / self.num_classes)
            )
        return None

    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        logits = self(batch["image"])
        weight = self.class_weight if self.class_balanced else None
        mode = self.label_mode if "target" in batch else None
        if mode == "multi_target":
            loss = multi_target_loss(logits.float(), batch["target"].float())
            return StepOutput(loss=loss, logs={"ce": loss.detach()}, logits=logits.detach())
        soft = self.soft_labels or mode in ("crossentropy", "votes")
        target = self._soft_target(batch) if soft and mode != "probability" else None
        label = batch["label"]
        if mode == "probability":
            label = sample_labels(batch["target"], ctx.generator)
        if target is not None:
            if self.label_smoothing:
                target = (
                    target * (1 - self.label_smoothing) + self.label_smoothing / self.num_classes
                )
            logp = F.log_softmax(logits.float(), dim=1)
            per = -(target * logp * (weight if weight is not None else 1.0)).sum(dim=1)
            loss = per.mean()
        else:
            loss = F.cross_entropy(
                logits.float(),
                label,
                weight=weight,
                label_smoothing=self.label_smoothing,
                ignore_index=-1,
            )
        return StepOutput(loss=loss, logs={"ce": loss.detach()}, logits=logits.detach())
