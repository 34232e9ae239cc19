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

The EMA-teacher stage (004 Sec. 3.3, Eq. 1-5; ``ema.enabled: true``, the third stage of the
``ssfer`` recipe): the method owns a *teacher*, a copy of backbone + head that is never trained by
the optimiser but follows the student after every step, ``theta_t <- m theta_t + (1 - m) theta_s``
(Eq. 1, ``ema.momentum`` = m; buffers such as BatchNorm statistics are copied). Each batch holds
labelled images and ``trainer.semi.unlabelled_ratio`` unlabelled ones with a weak and a strong
view (``trainer.semi.unlabelled_views``, default ``[weak, strong]``: random resized crop + flip,
then + RandAugment, Sec. 4.2). The teacher (in eval mode) labels the weak views (Eq. 3); a
pseudo-label with ``max p > conf_threshold`` (tau; strict, Eq. 4) supervises the student on the
strong view; ``L = L_l + mu L_u`` (Eq. 5) with ``L_l`` the labelled loss of ``facemix.enabled``
(the preset's third stage sets ``false``: Eq. 2's cross-entropy). The teacher starts as the
hand-off's model and head (``init_from.parts: [backbone, head]``: it equals the student at the
first step), or as the handed-on ``teacher`` where an earlier stage had one. Evaluation
(``val/*``, ``test/*``, the best checkpoint) uses the teacher's current weights
(``eval_model: teacher``; ``student`` evaluates the student), never a stale copy (the authors'
code evaluates a stale EMA). This differs from ``trainer.ema`` (``engine/ema.py``), a weight
average of the whole method kept by the loop for evaluation only: it produces no pseudo-labels and
does not change training; both can be on at once (then evaluation sees the average of the teacher).
The paper prints no m, tau or mu; the defaults 0.999, 0.7, 1.0 are the authors' code's (KNOBS.md).
Logged per epoch: ``semi/mask_rate`` (fraction of unlabelled samples above tau),
``semi/pseudo_acc`` (the teacher's pseudo-labels against the true class, all unlabelled samples;
SynthFER, where the pool keeps its true class), ``semi/pseudo_acc_masked`` (the same over the
samples above tau; 0 when none passed) and ``semi/unlabelled_loss`` (Eq. 4).

The stages before the EMA-teacher one are the ``ssfer_finetune`` recipe (MAE, then FaceMix);
``ssfer`` (``fer_core/conf/recipe/ssfer.yaml``) runs all three.
"""

from __future__ import annotations

import copy
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
from fer_core.losses.pseudo import check_unit, ema_update_, pseudo_labels, unlabelled_loss
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
EVAL_MODELS = ("teacher", "student")
SEMI_METRICS = (
    "semi/mask_rate",
    "semi/pseudo_acc",
    "semi/pseudo_acc_masked",
    "semi/unlabelled_loss",
)


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
        ema_enabled: bool = False,
        ema_momentum: float = 0.999,
        conf_threshold: float = 0.7,
        mu: float = 1.0,
        eval_model: str = "teacher",
        **kwargs,
    ) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        if not isinstance(ema_enabled, bool):
            raise ValueError(
                f"ema.enabled must be true (the EMA-teacher stage) or false, got {ema_enabled!r}"
            )
        self.momentum = check_unit("ema.momentum", ema_momentum)
        self.tau = check_unit("conf_threshold", conf_threshold)
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or mu < 0:
            raise ValueError(f"mu must be a number >= 0 (Eq. 5's weight of L_u), got {mu!r}")
        if eval_model not in EVAL_MODELS:
            raise ValueError(
                f"eval_model must be one of {', '.join(EVAL_MODELS)}, got {eval_model!r}"
            )
        self.ema_enabled, self.mu, self.eval_model = ema_enabled, float(mu), eval_model
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
        if self.ema_enabled:  # Eq. 1's teacher: a copy of the student, trained by EMA only
            self.teacher = nn.ModuleDict(
                {"backbone": copy.deepcopy(backbone), "head": copy.deepcopy(self.head)}
            )
            self.teacher.requires_grad_(False)
        self._semi_sums: dict[str, torch.Tensor] = {}

    @property
    def uses_boxes(self) -> bool:
        return self.mode == "facemix" and self.kappa == "iou"

    @property
    def needs(self) -> MethodNeeds:  # type: ignore[override]
        if self.uses_boxes:
            return MethodNeeds(boxes=True, box_source=self.box_source, unlabelled=self.ema_enabled)
        return MethodNeeds(unlabelled=self.ema_enabled)

    @property
    def own_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        if self.mode == "facemix":
            own = ("train/mix", "train/real", "train/kappa")
        else:
            own = ("train/mix",) if self.mode == "mixup" else ("train/ce",)
        return own + SEMI_METRICS if self.ema_enabled else own

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> the student's logits [N, num_classes]."""
        return self.head(self.backbone.pooled(images))

    def teacher_logits(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> the teacher's logits [N, num_classes] (``ema.enabled`` only)."""
        return self.teacher["head"](self.teacher["backbone"].pooled(images))

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluation: the teacher's current weights (``eval_model: teacher``) or the student."""
        if self.ema_enabled and self.eval_model == "teacher":
            return self.teacher_logits(images)
        return self(images)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.ema_enabled:  # the teacher labels in eval mode (no dropout, running statistics)
            self.teacher.eval()
        return self

    def load_handoff(self, parts: dict[str, dict[str, torch.Tensor]]) -> None:
        """The earlier stage's parts; without a handed-on ``teacher`` the teacher starts as the
        handed-on student (backbone + head), so it is the previous stage's model (Eq. 1, t=0)."""
        super().load_handoff(parts)
        if self.ema_enabled and "teacher" not in parts:
            self.teacher["backbone"].load_state_dict(self.backbone.state_dict())
            self.teacher["head"].load_state_dict(self.head.state_dict())

    def _student_teacher_pairs(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        s = list(self.backbone.parameters()) + list(self.head.parameters())
        t = list(self.teacher["backbone"].parameters()) + list(self.teacher["head"].parameters())
        return t, s

    @torch.no_grad()
    def after_optimizer_step(self, ctx: StepContext) -> None:
        if not self.ema_enabled:
            return
        t, s = self._student_teacher_pairs()
        ema_update_(t, s, self.momentum)  # Eq. 1
        for mod_t, mod_s in ((self.teacher["backbone"], self.backbone),
                             (self.teacher["head"], self.head)):  # fmt: skip
            for bt, bs in zip(mod_t.buffers(), mod_s.buffers()):
                bt.copy_(bs)

    def on_epoch_start(self, epoch: int) -> None:
        self._semi_sums = {}

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        if not self.ema_enabled or not self._semi_sums:
            return {}
        c = {k: float(v) for k, v in self._semi_sums.items()}
        n = max(c["n"], 1.0)
        out = {
            "semi/mask_rate": c["masked"] / n,
            "semi/unlabelled_loss": c["loss"] / max(c["steps"], 1.0),
        }
        if c.get("n_true", 0.0) > 0:
            out["semi/pseudo_acc"] = c["correct"] / c["n_true"]
            masked_true = c["masked_true"]
            out["semi/pseudo_acc_masked"] = (
                c["correct_masked"] / masked_true if masked_true else 0.0
            )
        return out

    def _count(self, name: str, value: torch.Tensor | float) -> None:
        v = torch.as_tensor(value, dtype=torch.float32).detach()
        self._semi_sums[name] = self._semi_sums.get(name, 0.0) + v

    def _semi_loss(self, u: dict) -> torch.Tensor:
        """Eq. 3-4 on the unlabelled batch ``u`` (views [weak, strong]); counts the epoch's
        mask rate and pseudo-label accuracy."""
        weak, strong = u["views"][0], u["views"][1]
        with torch.no_grad():
            probs = self.teacher_logits(weak).float().softmax(dim=1)
        y_hat, mask = pseudo_labels(probs, self.tau)
        loss = unlabelled_loss(self(strong), y_hat, mask)
        self._count("n", mask.numel())
        self._count("masked", mask.sum())
        self._count("loss", loss)
        self._count("steps", 1.0)
        true = u.get("true_label")
        if true is not None:
            ok, known = (y_hat == true), true >= 0
            self._count("n_true", known.sum())
            self._count("correct", (ok & known).sum())
            self._count("masked_true", (mask & known).sum())
            self._count("correct_masked", (ok & known & mask).sum())
        return loss

    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        out = self._labelled_step(batch, ctx)
        if not self.ema_enabled:
            return out
        lu = self._semi_loss(batch["unlabelled"])
        return StepOutput(loss=out.loss + self.mu * lu, logs=out.logs, logits=out.logits)

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

    def _labelled_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        """The labelled loss of ``facemix.enabled`` (FaceMix, Mixup or Eq. 2's cross-entropy)."""
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
