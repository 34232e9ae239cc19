"""Searchers written for fer-study (Optuna samplers; Ray Tune reaches them via ``OptunaSearch``).

Optuna's own samplers (random, tpe, cmaes, gp, grid) are used as they are; this registry holds
the ones the project implements itself, so a single parametrized test can iterate
:func:`list_searchers`.
"""

from __future__ import annotations

from typing import Any

from optuna.samplers import BaseSampler

from fer_core.registry import Registry
from fer_core.tune.searchers.gwo import GWOSampler

SEARCHERS: Registry[BaseSampler] = Registry("searcher")
SEARCHERS.register("gwo")(GWOSampler)


def list_searchers() -> list[str]:
    """Names of the project's own searchers (``algorithm.name`` in a study file)."""
    return SEARCHERS.names()


def create_searcher(name: str, **kwargs: Any) -> BaseSampler:
    """Build a registered searcher, e.g. ``create_searcher("gwo", seed=0, population_size=8)``."""
    return SEARCHERS.create(name, **kwargs)


__all__ = ["GWOSampler", "SEARCHERS", "create_searcher", "list_searchers"]
