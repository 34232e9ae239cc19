"""SSFER's EMA-teacher pseudo-label loss (004 Sec. 3.3, Eq. 3-5).

The teacher's class probabilities ``p`` on the weak view give pseudo-labels
``y_hat = argmax_c p_c`` (Eq. 3); a sample supervises the student's prediction on its strong view
only when ``max p > tau``, strictly (Eq. 4's indicator), and the loss is averaged over *all*
``N_U`` unlabelled samples, masked ones counting as 0 (Eq. 4's ``1 / N_U``). Eq. 5 adds it to the
labelled cross-entropy with weight ``mu``. The teacher is the EMA of the student (Eq. 1),
``methods/ssfer.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_unit(name: str, value: float) -> float:
    """``value`` in [0, 1], else a ``ValueError`` naming the knob ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def pseudo_labels(probs: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """probs [N, K] (the teacher's softmax on weak views) -> (y_hat [N] long, mask [N] bool:
    ``max p > tau``, strict as Eq. 4)."""
    assert probs.dim() == 2, f"probs must be [N, K], got {tuple(probs.shape)}"
    conf, y_hat = probs.max(dim=1)
    return y_hat, conf > tau


def unlabelled_loss(
    logits_strong: torch.Tensor, y_hat: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Eq. 4: ``1/N_U sum_i 1[max p_i > tau] CE(student(A_strong(x_i)), y_hat_i)``.

    logits_strong [N, K], y_hat [N], mask [N] bool -> scalar (0 when N = 0)."""
    assert logits_strong.shape[0] == y_hat.shape[0] == mask.shape[0]
    if logits_strong.shape[0] == 0:
        return logits_strong.sum() * 0.0
    ce = F.cross_entropy(logits_strong.float(), y_hat, reduction="none")
    return (ce * mask.float()).mean()


def ema_update_(teacher: list[torch.Tensor], student: list[torch.Tensor], m: float) -> None:
    """Eq. 1 in place: ``theta_t <- m theta_t + (1 - m) theta_s`` for each pair of tensors."""
    assert len(teacher) == len(student), "teacher and student must have the same parameters"
    with torch.no_grad():
        for t, s in zip(teacher, student):
            t.mul_(m).add_(s.detach().to(t.dtype), alpha=1.0 - m)
