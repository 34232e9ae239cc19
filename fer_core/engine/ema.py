"""Weight EMA of the whole method (``trainer.ema`` = decay), via timm's ModelEmaV3."""

from __future__ import annotations

from timm.utils import ModelEmaV3
from torch import nn


def make_ema(model: nn.Module, decay: float | None) -> ModelEmaV3 | None:
    """None when ``decay`` is None; else an EMA copy updated with ``ema.update(model, step)``."""
    if decay is None:
        return None
    if not 0.0 < float(decay) < 1.0:
        raise ValueError(f"trainer.ema must be in (0, 1) or null, got {decay!r}")
    return ModelEmaV3(model, decay=float(decay))
