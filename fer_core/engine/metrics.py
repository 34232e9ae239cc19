"""Classification metrics (torchmetrics): accuracy, UAR (macro recall), macro F1, confusion matrix.

Values are fractions in [0, 1] (INTERFACES.md). Samples without a hard label (-1) are skipped.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_recall,
)


def unseen_predictions(logits: torch.Tensor, cls: int, threshold: float) -> torch.Tensor:
    """003 Table III: the arg-max class, or ``cls`` (the class dropped from training) where the
    top softmax probability is below ``threshold`` (``trainer.eval.unseen_threshold``, 0.25).
    logits [N, C] -> predictions [N] (long)."""
    prob = logits.float().softmax(dim=1)
    top, pred = prob.max(dim=1)
    return torch.where(top < float(threshold), torch.full_like(pred, int(cls)), pred)


def check_unseen_threshold(threshold: object) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(
            f"trainer.eval.unseen_threshold must be a number in (0, 1), got {threshold!r}"
        )
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"trainer.eval.unseen_threshold must be in (0, 1), got {threshold!r}")
    return float(threshold)


def classification_metrics(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    prefix: str,
    true_labels: torch.Tensor | None = None,
    unseen: tuple[int, float] | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """logits [N, C], labels [N] (-1 = none) -> ({prefix/acc, /uar, /f1[, /acc_true]}, cm [C, C]).

    ``acc_true`` (SynthFER) is the accuracy against the true generating class. ``unseen``
    ``(class, threshold)``: predictions by :func:`unseen_predictions` (``data.drop_class`` set).
    """
    pred = logits.argmax(dim=1) if unseen is None else unseen_predictions(logits, *unseen)
    keep = labels >= 0
    p, y = pred[keep], labels[keep]
    out: dict[str, float] = {}
    if y.numel():
        out[f"{prefix}/acc"] = float(multiclass_accuracy(p, y, num_classes, average="micro"))
        out[f"{prefix}/uar"] = float(multiclass_recall(p, y, num_classes, average="macro"))
        out[f"{prefix}/f1"] = float(multiclass_f1_score(p, y, num_classes, average="macro"))
        cm = multiclass_confusion_matrix(p, y, num_classes)
    else:
        cm = torch.zeros(num_classes, num_classes, dtype=torch.long)
    if true_labels is not None:
        k = true_labels >= 0
        if k.any():
            out[f"{prefix}/acc_true"] = float((pred[k] == true_labels[k]).float().mean())
    return out, cm
