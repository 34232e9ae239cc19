"""Training targets and loss of FERPlus's label modes, as Microsoft's reference code trains them.

FERPlus (Barsoum et al., ICMI 2016; github.com/microsoft/FERPlus, ``src/ferplus.py`` and
``src/train.py``). ``fer_core.data.labels.ferplus_label_mode`` turns the votes into each mode's
target distribution ``t`` (``_process_data``); what a training step does with it is
``_process_target`` and ``cost_func``, ported here:

- ``majority`` / ``crossentropy``: cross-entropy against ``t`` (one-hot for ``majority``).
- ``probability``: each time a sample is used, one class is drawn from ``t`` and the sample is
  trained as one-hot on it (``np.random.choice(len(target), p=target)``):
  :func:`sample_labels`, with the trial's generator instead of NumPy's global state.
- ``multi_target``: every class with ``t_k > 0`` counts as correct: the target becomes
  ``(1 - eps) * [t_k > 0] + eps`` (``eps = 0.001``, "to avoid ill-conditioned computation") and the
  loss is ``-log max_k (t'_k p_k)``, ``p = softmax(z)``: :func:`multi_target_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MULTI_TARGET_EPS = 0.001  # the reference's epsilon


def sample_labels(targets: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One class per row drawn from ``targets`` [N, C] (rows sum to 1): long [N], same device.

    Drawn on the CPU so that a CPU ``generator`` (the trial's) works for CUDA batches as well.
    """
    if targets.dim() != 2:
        raise ValueError(f"targets must be [N, C], got {tuple(targets.shape)}")
    probs = targets.detach().float().cpu().clamp_min(0)
    if (probs.sum(dim=1) <= 0).any():
        raise ValueError("every target row needs a positive entry to draw a label from")
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(targets.device)


def multi_target_loss(
    logits: torch.Tensor, targets: torch.Tensor, eps: float = MULTI_TARGET_EPS
) -> torch.Tensor:
    """``mean_i -log max_k (t'_ik softmax(z_i)_k)``, ``t' = (1 - eps) [t > 0] + eps``; scalar.

    logits, targets: [N, C]. Computed in log space: ``max_k (log t'_k + log_softmax(z)_k)``.
    """
    if logits.shape != targets.shape or logits.dim() != 2:
        raise ValueError(
            f"logits and targets must both be [N, C], got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    kept = (targets > 0).to(logits.dtype)
    t = (1.0 - eps) * kept + eps
    return -(torch.log(t) + F.log_softmax(logits, dim=1)).max(dim=1).values.mean()
