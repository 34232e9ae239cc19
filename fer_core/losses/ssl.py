"""Losses and momentum rules of the self-supervised baselines of 002 (Table 1, Sec. 3.1 / 4.1).

- :func:`byol_loss`: 002 Eq. 1, ``2 - 2 cos(p, z)`` (BYOL's normalised MSE), mean over the batch;
  the symmetric BYOL / GFL loss is the sum of both view orders (Sec. 3.1: "the same process can
  be done again by swapping the positions of v1 and v2").
- :func:`simsiam_loss`: SimSiam's symmetric negative cosine, ``D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2``.
- :func:`moco_infonce`: MoCo's InfoNCE against a queue of keys, ``-log exp(q.k+ / T) /
  (exp(q.k+ / T) + sum_j exp(q.k_j / T))`` on L2-normalised vectors; :class:`KeyQueue` is the queue.
- :func:`nt_xent`: SimCLR's NT-Xent over the 2N views of a batch.
- :func:`ema_momentum`: the target's momentum at a step, ``constant`` (the authors' 0.99) or
  BYOL's ``cosine`` ramp ``1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`` (to 1 at the end).

The formulas come from lightly (1.6.0, pinned): ``NegativeCosineSimilarity``, ``NTXentLoss``,
``cosine_schedule`` and ``update_momentum``; tests compare our use of them with values computed by
hand. MoCo's loss is written here because lightly's memory bank is not saved in checkpoints
(non-persistent buffers) and drops the part of a batch that passes the end of the bank; its value
is tested against lightly's ``NTXentLoss`` with the same bank. ``import lightly`` is lazy (inside
the functions): every module of ``fer_core.methods`` is imported with the package.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EMA_SCHEDULES = ("constant", "cosine")


def check_ema(ema: float, schedule: str, where: str = "method.gfl") -> tuple[float, str]:
    """``gfl.ema`` in [0, 1] (a number) and ``gfl.ema_schedule`` constant | cosine."""
    if isinstance(ema, bool) or not isinstance(ema, (int, float)) or not 0.0 <= float(ema) <= 1.0:
        raise ValueError(
            f"{where}.ema={ema!r} is not allowed: the target's momentum tau (002 Sec. 3.1, "
            "rho <- tau rho + (1 - tau) theta) must be a number in [0, 1] (the authors' code: 0.99)"
        )
    if schedule not in EMA_SCHEDULES:
        raise ValueError(
            f"{where}.ema_schedule={schedule!r} is not allowed; use one of "
            f"{', '.join(EMA_SCHEDULES)} (constant: the authors' code; cosine: BYOL, ema -> 1)"
        )
    return float(ema), str(schedule)


def ema_momentum(base: float, schedule: str, step: int, total_steps: int) -> float:
    """The target's momentum tau at optimiser step ``step`` (0-based) of ``total_steps``.

    ``constant``: ``base``; ``cosine`` (BYOL Sec. 3.2): lightly's ``cosine_schedule`` from
    ``base`` at step 0 to 1 at the last step, ``1 - (1 - base) (cos(pi k / (K - 1)) + 1) / 2``."""
    check_ema(base, schedule)
    if schedule == "constant":
        return float(base)
    from lightly.utils.scheduler import cosine_schedule

    return float(cosine_schedule(int(step), int(total_steps), float(base), 1.0))


@torch.no_grad()
def update_target(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """``rho <- tau rho + (1 - tau) theta`` over the parameters (002 Sec. 3.1; lightly's
    ``update_momentum``); the target's BatchNorm statistics follow its own forward passes."""
    from lightly.models.utils import update_momentum

    update_momentum(online, target, m=float(momentum))


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """002 Eq. 1: mean over the batch of ``2 - 2 <p, z> / (|p| |z|)``; p, z: [N, D] -> scalar.

    ``z`` (the target's projection) carries no gradient in BYOL: pass it detached."""
    from lightly.loss import NegativeCosineSimilarity

    if p.shape != z.shape or p.ndim != 2:
        raise ValueError(
            f"byol_loss needs two [N, D] tensors of one shape, got {p.shape}, {z.shape}"
        )
    return 2.0 + 2.0 * NegativeCosineSimilarity(dim=1)(p, z)


def simsiam_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """SimSiam (Chen & He 2021, Eq. 2-3): ``D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2``, D the
    negative cosine similarity (lightly's ``NegativeCosineSimilarity``); all [N, D]."""
    from lightly.loss import NegativeCosineSimilarity

    d = NegativeCosineSimilarity(dim=1)
    return 0.5 * d(p1, z2.detach()) + 0.5 * d(p2, z1.detach())


def moco_infonce(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """MoCo (He et al. 2020, Eq. 1): q, k [N, D] (k without gradient), queue [K, D] -> scalar.

    Every vector is L2-normalised here; logits ``[q.k+, q.queue^T] / T`` and cross-entropy with the
    positive at index 0 (Algorithm 1 of the MoCo paper)."""
    if not temperature > 0:
        raise ValueError(f"method.temperature must be > 0, got {temperature!r}")
    q, k = F.normalize(q, dim=1), F.normalize(k.detach(), dim=1)
    neg = F.normalize(queue.detach(), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ neg.T], dim=1) / float(temperature)
    target = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR (Chen et al. 2020, Eq. 1): NT-Xent over the 2N views, z1, z2 [N, D] -> scalar
    (lightly's ``NTXentLoss``: cosine similarities / T, each view's positive is its pair, the other
    2N - 2 views its negatives, mean over the 2N anchors)."""
    from lightly.loss import NTXentLoss

    if z1.shape[0] < 2:
        raise ValueError("nt_xent needs at least 2 samples (no negatives otherwise)")
    return NTXentLoss(temperature=float(temperature))(z1, z2)


class KeyQueue(nn.Module):
    """MoCo's queue of keys: ``keys`` [K, D] (unit rows, random at start) and a write pointer.

    Both are persistent buffers, so a checkpoint holds the queue and a resumed run continues with
    it. :meth:`push` writes a batch at rows ``(ptr + i) mod K``: the queue need not be a multiple
    of the batch size (MoCo's reference code asserts it because it writes one slice; here the write
    wraps, so no key is dropped), and a batch larger than the queue keeps its last K keys."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"method.queue_size={size!r} is not allowed; use an integer >= 1 (MoCo: 65536)"
            )
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, k: torch.Tensor) -> None:
        """Enqueue keys k [N, D] (normalised here), dequeuing the oldest."""
        size = self.keys.shape[0]
        k = F.normalize(k.detach().to(self.keys.dtype), dim=1)[-size:]
        rows = (int(self.ptr) + torch.arange(k.shape[0], device=k.device)) % size
        self.keys[rows] = k
        self.ptr.fill_((int(self.ptr) + k.shape[0]) % size)


__all__ = [
    "EMA_SCHEDULES",
    "KeyQueue",
    "byol_loss",
    "check_ema",
    "ema_momentum",
    "moco_infonce",
    "nt_xent",
    "simsiam_loss",
    "update_target",
]
