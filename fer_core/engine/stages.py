"""The stage cache: a label-free (pre-training) stage's result, shared by every run that has it.

A stage's entry lives at ``$FER_STUDY_CACHE/stages/<key>`` where ``key`` hashes the stage's
resolved config (minus bookkeeping knobs that cannot change its result) and the keys of the
stages before it (and the data, for k-fold). ``fer_core.cache.build_once`` takes a file lock, so a
sweep over fine-tuning knobs runs the shared pre-training once. An entry holds ``encoder.pt``
(the hand-off weights, timm naming) and ``history.json`` (its per-epoch metrics).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from fer_core.cache import build_once, config_hash

KIND = "stages"
# trainer knobs that do not change a stage's result
_BOOKKEEPING = (
    "resume",
    "run_dir",
    "progress",
    "threads",
    "num_workers",
    "eval_every",
    "save_every",
)


class StageStopped(Exception):
    """The epoch callback stopped a stage (nothing is cached)."""


def stage_key(stage_cfg: dict, previous_key: str, data_tag: str = "") -> str:
    cfg = json.loads(json.dumps(stage_cfg))
    for k in _BOOKKEEPING:
        cfg.get("trainer", {}).pop(k, None)
    return config_hash({"stage": cfg, "previous": previous_key, "data": data_tag})


def cached_stage(
    key: str, run: Callable[[], tuple[dict[str, torch.Tensor], list[dict]]]
) -> tuple[dict[str, torch.Tensor], list[dict], bool]:
    """``(encoder state, history, ran)``: runs ``run()`` only if ``stages/<key>`` is missing."""
    ran = False

    def builder(tmp: Path) -> None:
        nonlocal ran
        ran = True
        encoder, history = run()
        torch.save(encoder, tmp / "encoder.pt")
        (tmp / "history.json").write_text(json.dumps(history, indent=1))

    path = build_once(KIND, key, builder)
    encoder = torch.load(path / "encoder.pt", map_location="cpu", weights_only=True)
    history = json.loads((path / "history.json").read_text())
    return encoder, history, ran
