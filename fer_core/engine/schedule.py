"""Learning-rate schedules: timm schedulers stepped every update.

``cosine``: linear warm-up from ``warmup_lr`` to ``lr`` over ``warmup_epochs``, then cosine to
``min_lr`` (004's lr trio); ``exponential``: ``lr * gamma ** epoch`` (003); ``constant``.
timm applies each parameter group's ``lr_scale`` (layer-wise decay) when it sets the lr.
The schedule is a pure function of the global step, so resuming needs no scheduler state.
"""

from __future__ import annotations

from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler
from torch.optim import Optimizer

SCHEDULES = ("cosine", "exponential", "constant")


def make_scheduler(
    name: str,
    optimizer: Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    min_lr: float = 0.0,
    warmup_lr: float = 0.0,
    warmup_epochs: float = 0.0,
    gamma: float = 1.0,
) -> Scheduler:
    """A timm scheduler for ``step_update(global_step)``; ``name`` in :data:`SCHEDULES`."""
    if name not in SCHEDULES:
        raise ValueError(f"sched.name must be one of {', '.join(SCHEDULES)}, got {name!r}")
    warm = int(round(float(warmup_epochs) * steps_per_epoch))
    total = max(1, int(epochs) * int(steps_per_epoch))
    if name == "cosine":
        return CosineLRScheduler(
            optimizer, t_initial=max(1, total - warm), lr_min=float(min_lr), warmup_t=warm,
            warmup_lr_init=float(warmup_lr), warmup_prefix=True, t_in_epochs=False,
        )  # fmt: skip
    rate = float(gamma) if name == "exponential" else 1.0
    return StepLRScheduler(
        optimizer, decay_t=max(1, int(steps_per_epoch)), decay_rate=rate, warmup_t=warm,
        warmup_lr_init=float(warmup_lr), warmup_prefix=True, t_in_epochs=False,
    )  # fmt: skip


def current_lr(optimizer: Optimizer) -> float:
    """The largest lr over the parameter groups (the top layer's, under layer decay)."""
    return max(float(g["lr"]) for g in optimizer.param_groups)
