"""Seeding: one seed per run, derived seeds per (stage, epoch) so a resumed run repeats exactly."""

from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(seed: int, *parts: int) -> int:
    """A deterministic 31-bit seed from ``seed`` and integer ``parts`` (stage index, epoch, ...)."""
    h = int(seed) & 0x7FFFFFFF
    for p in parts:
        h = (h * 1_000_003 + int(p) + 0x9E3779B1) & 0x7FFFFFFF
    return h


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA); returns a torch.Generator seeded the same."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_deterministic(flag: bool) -> None:
    """``trainer.deterministic``: torch's deterministic algorithms (warn-only) and no cuDNN tuning."""
    torch.use_deterministic_algorithms(bool(flag), warn_only=True)
    torch.backends.cudnn.benchmark = not flag
