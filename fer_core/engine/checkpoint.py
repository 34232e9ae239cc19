"""Checkpoints: one ``torch.save`` dict of tensors and plain values, loadable with weights_only=True.

Keys: ``stage`` (name), ``stage_index``, ``epoch`` (0-based, the last finished), ``global_step``,
``model`` (the method's state dict), ``optimizer``, ``ema`` (or None), ``method_state``,
``best`` ({"value", "epoch"}), ``history`` (list of metric dicts of the whole recipe so far),
``encoders`` (stage name -> hand-off encoder state of finished stages, for resuming later stages).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a directory holding ``last.pt`` (the callback's ``checkpoint_dir``)."""
    p = Path(path).expanduser().resolve()
    if p.is_dir():
        p = p / LAST
    if not p.is_file():
        raise ValueError(
            f"trainer.resume: no checkpoint at {str(p)!r} (give a file or a dir with {LAST})"
        )
    return p


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(resolve_checkpoint(path), map_location="cpu", weights_only=True)
