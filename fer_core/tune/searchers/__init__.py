"""Every search algorithm a study may name (``algorithm.name``), as one registry of Optuna samplers.

``grid``, ``random``, ``tpe``, ``cmaes`` and ``gp`` are Optuna's own samplers; ``gwo`` is the
project's Grey Wolf Optimizer (``gwo.py``). Ray Tune reaches them through the study runner's
ask/tell searcher. This module imports Optuna only (no Ray), so the study schema can read
:func:`list_searchers` and :func:`searcher_options`, and one parametrized test covers them all.

A searcher's constructor arguments are the study file's ``algorithm`` options, except the ones
the runner supplies (:data:`RUNNER_ARGS`): ``search_space`` (the grid's values) and ``n_trials``
(the study's ``num_samples``).
"""

from __future__ import annotations

import inspect
from typing import Any

import optuna
from optuna.samplers import BaseSampler

from fer_core.registry import Registry
from fer_core.tune.searchers.gwo import GWOSampler

RUNNER_ARGS = ("search_space", "n_trials")

SEARCHERS: Registry[BaseSampler] = Registry("searcher")


class StudyGridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler without ``study.stop()`` at the end of the grid.

    The runner asks exactly the grid's size of configurations itself; ``stop()`` outside
    ``optimize`` raises in ask/tell use.
    """

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ARG002
        return None


@SEARCHERS.register("grid")
def _grid(search_space: dict[str, list[Any]], seed: int | None = None) -> BaseSampler:
    """Every combination of ``search_space`` (knob -> values), in a seeded order."""
    return StudyGridSampler(search_space, seed=seed)


# Optuna's samplers and GWO are registered as their classes: their ``__init__`` arguments are the
# study file's options (``searcher_options``).
SEARCHERS.register("random")(optuna.samplers.RandomSampler)
SEARCHERS.register("tpe")(optuna.samplers.TPESampler)
SEARCHERS.register("cmaes")(optuna.samplers.CmaEsSampler)
SEARCHERS.register("gp")(optuna.samplers.GPSampler)
SEARCHERS.register("gwo")(GWOSampler)


def list_searchers() -> list[str]:
    """Names a study file may give as ``algorithm.name``."""
    return SEARCHERS.names()


def create_searcher(name: str, **kwargs: Any) -> BaseSampler:
    """Build a registered searcher, e.g. ``create_searcher("gwo", seed=0, population_size=8)``."""
    return SEARCHERS.create(name, **kwargs)


def _params(name: str) -> list[str]:
    skip = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    params = inspect.signature(SEARCHERS.get(name)).parameters.values()
    return [p.name for p in params if p.kind not in skip]


def searcher_options(name: str) -> tuple[str, ...]:
    """The ``algorithm`` options a study file may set for searcher ``name`` (besides ``name``)."""
    return tuple(p for p in _params(name) if p not in RUNNER_ARGS)


def runner_args(name: str) -> tuple[str, ...]:
    """Which of :data:`RUNNER_ARGS` searcher ``name`` takes."""
    return tuple(p for p in _params(name) if p in RUNNER_ARGS)


__all__ = [
    "RUNNER_ARGS",
    "SEARCHERS",
    "GWOSampler",
    "StudyGridSampler",
    "create_searcher",
    "list_searchers",
    "runner_args",
    "searcher_options",
]
