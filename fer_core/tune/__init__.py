"""Running studies: Ray Tune trials, Optuna storage and dashboard, seeds, resume, GPUs.

- ``runner.run_study(spec, run_dir, ...)``: the study runner (``fer-study run``).
- ``spec.StudySpec`` / ``spec.spec_from_study``: what the runner reads from a resolved study.
- ``searcher.SeedGroupSearcher``: ask/tell Optuna searcher for Tune (seed groups, resume).
- ``trainable.make_trainable``: the Tune trainable around the trainer's ``run_recipe``.
- ``results.ResultBook``: ``trials.csv``; ``manifest``: ``manifest.json`` / ``study.yaml``.
- ``dashboard``: ``fer-study dashboard`` (optuna-dashboard on 127.0.0.1).

Ray is imported only by the modules that need it, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_study", "StudySpec", "spec_from_study"]


def __getattr__(name: str) -> Any:
    if name == "run_study":
        from fer_core.tune.runner import run_study

        return run_study
    if name in ("StudySpec", "spec_from_study"):
        from fer_core.tune import spec

        return getattr(spec, name)
    raise AttributeError(name)
