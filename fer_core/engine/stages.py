"""The stage cache: the result of a stage before a recipe's last, shared by every run that has it.

A stage's entry lives at ``$FER_STUDY_CACHE/stages/<key>`` where ``key`` hashes the stage's
resolved config (its seed and ``init_from`` included, minus bookkeeping knobs that cannot change
its result), the key of the stage before it (which hashes everything before that) and the data
hash, and the code that trains it (``code_version()``: a hash of the package's Python and config
files, so an entry built before a fix is never taken for the fixed code's result; a sweep runs
one code version) and the number of CPU threads the stage trains with (``trainer.threads``, else
torch's current count: the order of a CPU reduction changes with it, and a self-supervised
pre-training's numbers with that, e.g. 25.6 vs 31.0 % test acc for one SimFLE-recipe BYOL seed
at 1 and 2 threads). ``fer_core.cache.build_once`` takes a file lock and renames atomically, so a sweep over a
last-stage knob runs each earlier stage once per seed, across trials and studies. An entry holds
``handoff.pt`` (the stage's ``Method.handoff_state()``: named parts) and ``history.json`` (its
per-epoch metrics).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import torch

from fer_core.cache import build_once, config_hash

KIND = "stages"
# trainer knobs that do not change a stage's result
_BOOKKEEPING = (
    "resume",
    "run_dir",
    "progress",
    "num_workers",
    "eval_every",
    "save_every",
)


class StageStopped(Exception):
    """The epoch callback stopped a stage (nothing is cached)."""


# knobs a stage ignores unless it uses them: the label budget outside protocol=semi, the folds
# outside protocol=kfold, and the label knobs and split sizes of unlabelled face images (data=faces)
_SEMI_BUDGET = ("fraction", "per_class", "total")
_FACES_IGNORE = ("label_noise", "drop_class", "keep_fraction", "n_val", "n_test", "val_fraction")


@cache
def code_version() -> str:
    """A hash of every ``.py`` and ``.yaml`` file of the ``fer_core`` package (path and bytes)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def stage_key(stage_cfg: dict, previous_key: str, data_tag: str = "") -> str:
    cfg = json.loads(json.dumps(stage_cfg))
    trainer = cfg.get("trainer", {})
    for k in _BOOKKEEPING:
        trainer.pop(k, None)
    # the threads it trains with (the knob, else what torch uses now): they change its floats
    trainer["threads"] = int(trainer.get("threads") or torch.get_num_threads())
    if trainer.get("protocol") != "semi":  # e.g. a sweep over the fraction reuses the MAE stage
        for k in _SEMI_BUDGET:
            (trainer.get("semi") or {}).pop(k, None)
    if trainer.get("protocol") != "kfold":
        trainer.pop("kfold", None)
    if (cfg.get("data") or {}).get("name") == "faces":
        for k in _FACES_IGNORE:
            cfg["data"].pop(k, None)
    return config_hash(
        {"v": 3, "code": code_version(), "stage": cfg, "previous": previous_key, "data": data_tag}
    )


def cached_stage(
    key: str, run: Callable[[], tuple[dict[str, torch.Tensor], list[dict]]]
) -> tuple[dict[str, torch.Tensor], list[dict], bool]:
    """``(handoff parts, history, ran)``: runs ``run()`` only if ``stages/<key>`` is missing."""
    ran = False

    def builder(tmp: Path) -> None:
        nonlocal ran
        ran = True
        handoff, history = run()
        torch.save(handoff, tmp / "handoff.pt")
        (tmp / "history.json").write_text(json.dumps(history, indent=1))

    path = build_once(KIND, key, builder)
    handoff = torch.load(path / "handoff.pt", map_location="cpu", weights_only=True)
    history = json.loads((path / "history.json").read_text())
    return handoff, history, ran
