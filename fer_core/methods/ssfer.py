"""SSFER's supervised fine-tuning stage with FaceMix (004, Sec. 3.4, Eq. 6-14): ``ssfer``.

``facemix.enabled`` picks the loss of a step:

- ``true``: FaceMix. Each labelled image ``x_i`` is mixed with a partner ``x_j`` (a random
  permutation of the batch, ``methods/mixing.py``, from the trial's generator) at one
  ``lam ~ Beta(facemix.alpha, facemix.alpha)`` per batch (Eq. 6: "the ratio lambda is a scalar");
  one forward pass over ``[x, x~]`` gives the predictions on the real and the virtual samples, and
  the loss is ``facemix.loss`` (L1..L4, Eq. 11-14; L4 the paper's) with ``kappa`` from
  ``facemix.kappa`` (``iou`` of the face boxes, ``psnr``, ``ssim``, ``fsim`` of the two images, or
  ``none`` = 1; ``losses/facemix.py`` says how each maps to [0, 1]). The batch is never mixed in
  place: ``L_i`` and ``L_j`` see the unmixed images (the authors' code mixes in place).
- ``mixup``: plain Mixup (Table 13's row): the soft-target cross-entropy on the mixes only (Eq. 7).
- ``false``: cross-entropy on the unmixed images (Table 10's baseline).

Face boxes (``kappa=iou`` only): ``boxes.source`` is ``annotated`` (the dataset's; SynthFER's are
exact), ``detector`` (scikit-image's LBP cascade, the ``detect`` extra; the paper uses yolo-face,
which no kept package ships) or ``full`` (the whole image; refused with ``iou``, where kappa would
be 0 for every pair). The boxes follow every geometric augmentation (``engine/batches.py``).

``train/acc`` is computed on the unmixed images (``false``, ``true``) or, under ``mixup``, on the
mixes against the first image's label. Logged: ``train/ce`` (``false``), ``train/mix`` (L_v),
``train/real`` (L_i + L_j) and ``train/kappa`` (mean kappa) for FaceMix.

The MAE pre-training before this stage is the ``ssfer_finetune`` recipe
(``fer_core/conf/recipe/ssfer_finetune.yaml``); the EMA-teacher stage comes with the SSFER
pipeline.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.data.boxes import BOX_SOURCES, require_detector
from fer_core.data.transforms import MEAN, STD
from fer_core.losses.facemix import (
    check_alpha,
    check_kappa,
    check_loss_form,
    compute_kappa,
    facemix_loss,
    soft_cross_entropy,
)
from fer_core.methods.base import (
    Method,
    MethodNeeds,
    StepContext,
    StepOutput,
    TrainContext,
    register_method,
)
from fer_core.methods.mixing import mix_batch, sample_lambda
from fer_core.models.heads import ClassifierHead

# facemix.enabled: true (FaceMix) | false (cross-entropy) | mixup, read as one of these modes. The
# config group writes the default as the string "true" so that its type check accepts all three.
ENABLED = {True: "facemix", "true": "facemix", False: "ce", "false": "ce", "mixup": "mixup"}


def enabled_mode(enabled: bool | str) -> str:
    """``facemix.enabled`` -> ``facemix | ce | mixup``; anything else is a ``ValueError``."""
    for key, mode in ENABLED.items():
        if enabled is key if isinstance(key, bool) else (type(enabled) is str and enabled == key):
            return mode
    raise ValueError(
        f"facemix.enabled must be true (FaceMix), false (cross-entropy) or mixup (Mixup "
        f"without kappa), got {enabled!r}"
    )


@register_method("ssfer")
class SSFER(Method):
    """FaceMix fine-tuning (or Mixup / CE); knobs as in ``conf/method/ssfer.yaml``."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        facemix_enabled: bool | str = "true",
        facemix_kappa: str = "iou",
        facemix_loss: str = "L4",
        facemix_alpha: float = 1.0,
        boxes_source: str = "annotated",
        **kwargs,
    ) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        self.mode = enabled_mode(facemix_enabled)
        check_kappa(facemix_kappa)
        check_loss_form(facemix_loss)
        check_alpha(facemix_alpha)
        if boxes_source not in BOX_SOURCES:
            raise ValueError(
                f"boxes.source must be one of {', '.join(BOX_SOURCES)}, got {boxes_source!r}"
            )
        self.kappa, self.form, self.alpha = facemix_kappa, facemix_loss, float(facemix_alpha)
        self.box_source = boxes_source
        if self.uses_boxes:
            if boxes_source == "full":
                raise ValueError(
                    "facemix.kappa=iou with boxes.source=full: every box is the whole image, so "
                    "kappa = 1 - IoU would be 0 for every pair; choose boxes.source=annotated or "
                    "detector, or facemix.kappa=psnr, ssim, fsim or none"
                )
            if boxes_source == "detector":
                require_detector()
        self.head = ClassifierHead(backbone.num_features, num_classes)

    @property
    def uses_boxes(self) -> bool:
        return self.mode == "facemix" and self.kappa == "iou"

    @property
    def needs(self) -> MethodNeeds:  # type: ignore[override]
        if self.uses_boxes:
            return MethodNeeds(boxes=True, box_source=self.box_source)
        return MethodNeeds()

    @property
    def own_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.mode == "facemix":
            return ("train/mix", "train/real", "train/kappa")
        return ("train/mix",) if self.mode == "mixup" else ("train/ce",)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.backbone.pooled(images))

    def on_train_start(self, ctx: TrainContext) -> None:
        ds = ctx.train_set
        boxes = getattr(ds, "boxes", None)
        if self.uses_boxes and self.box_source == "annotated" and boxes is not None and len(ds):
            if bool((boxes == boxes[:1]).all()):
                warnings.warn(
                    f"facemix.kappa=iou: every annotated face box of dataset "
                    f"{getattr(ds, 'name', '?')!r} is the same (aligned images), so kappa = 0 "
                    "and FaceMix reduces to Mixup; use boxes.source=detector",
                    stacklevel=2,
                )

    def _kappa(self, x: torch.Tensor, boxes: torch.Tensor | None, index: torch.Tensor):
        if self.kappa == "iou":
            assert boxes is not None, "needs.boxes: the batch must hold 'box'"
            return compute_kappa("iou", boxes_i=boxes, boxes_j=boxes[index])
        if self.kappa == "none":
            return compute_kappa("none", n=x.shape[0]).to(x.device)
        unit = (x.detach().float() * STD + MEAN).clamp(0.0, 1.0)  # normalised -> [0, 1]
        return compute_kappa(self.kappa, x_i=unit, x_j=unit[index])

    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        x, y = batch["image"], batch["label"]
        if self.mode == "ce":
            logits = self(x)
            ce = F.cross_entropy(logits.float(), y, ignore_index=-1)
            return StepOutput(loss=ce, logs={"ce": ce.detach()}, logits=logits.detach())
        keep = y >= 0
        boxes = batch.get("box")
        if not bool(keep.all()):  # mix labelled samples only
            x, y = x[keep], y[keep]
            boxes = None if boxes is None else boxes[keep]
        n = x.shape[0]
        if n == 0:  # no labelled sample in this batch
            logits = self(batch["image"])
            zero = logits.sum() * 0.0
            logs = {k.split("/")[1]: 0.0 for k in self.own_metrics}
            return StepOutput(loss=zero, logs=logs, logits=logits.detach())
        g = ctx.generator if ctx is not None else None
        lam = sample_lambda(1, self.alpha, self.alpha, g).expand(n)  # one lam per batch (Eq. 6)
        mix = mix_batch(x, g, kind="mixup", alpha=self.alpha, beta=self.alpha, lam=lam)
        if self.mode == "mixup":
            logits = self(mix.images)
            loss = soft_cross_entropy(logits.float(), mix.targets(y, self.num_classes)).mean()
            shown = _whole_batch(logits.detach().float(), keep)
            return StepOutput(loss=loss, logs={"mix": loss.detach()}, logits=shown)
        kappa = self._kappa(x, boxes, mix.index)
        out = self(torch.cat([x, mix.images]))  # one pass: real [N], virtual [N]
        logits_real, logits_mix = out[:n].float(), out[n:].float()
        loss, parts = facemix_loss(logits_mix, logits_real, y, mix.index, mix.lam, kappa, self.form)
        logs = {"mix": parts["v"], "real": parts["real"], "kappa": parts["kappa"]}
        return StepOutput(loss=loss, logs=logs, logits=_whole_batch(logits_real.detach(), keep))


def _whole_batch(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Logits of the labelled rows placed back in a batch-sized [B, K] tensor (the loop counts
    train/acc over labelled rows only, so the zeros of unlabelled rows are never read)."""
    if bool(keep.all()):
        return logits
    out = logits.new_zeros(keep.shape[0], logits.shape[1])
    out[keep] = logits
    return out
