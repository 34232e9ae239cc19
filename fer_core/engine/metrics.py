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


def classification_metrics(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    prefix: str,
    true_labels: torch.Tensor | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """logits [N, C], labels [N] (-1 = none) -> ({prefix/acc, /uar, /f1[, /acc_true]}, cm [C, C]).

    ``acc_true`` (SynthFER) is the accuracy against the true generating class.
    """
    pred = logits.argmax(dim=1)
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
