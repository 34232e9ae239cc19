"""Optuna storage, samplers and search-space plumbing for the study runner.

The Optuna storage is the source of truth for configurations (PITFALLS.md: Tune's own searcher
checkpoint goes stale when a driver is killed). Default storage: ``sqlite:///<run_dir>/optuna.db``;
``--storage URL`` takes any SQLAlchemy URL. The Optuna study name is ``<study>-<profile>``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from fer_core.tune.searchers import create_searcher, runner_args
from fer_core.tune.spaces import to_optuna
from fer_core.tune.spec import StudySpec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{Path(run_dir).resolve() / 'optuna.db'}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage; SQLite gets a generous lock timeout (the driver is its only writer)."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    return optuna.storages.RDBStorage(url, **kwargs)


# ---------------------------------------------------------------- search space -> Optuna


def to_distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """The study's space as Optuna distributions (``spaces.to_optuna``; ``row`` for ablations)."""
    if spec.ablation_rows:
        return {"row": CategoricalDistribution(list(spec.ablation_rows))}
    return to_optuna(spec.space)


def conditions(spec: StudySpec) -> dict[str, dict[str, Any]]:
    """``path -> {other_path: value}`` for conditional parameters (``when:``)."""
    out = {}
    for k, v in spec.space.items():
        if isinstance(v, dict) and v.get("when"):
            out[k] = dict(v["when"])
    return out


def grid_values(dist: BaseDistribution, name: str) -> list[Any]:
    """Every value of a distribution for the grid algorithm (continuous ranges need ``q``)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step:
        n = int(math.floor((dist.high - dist.low) / dist.step + 1e-9)) + 1
        return [round(dist.low + i * dist.step, 12) for i in range(n)]
    raise ValueError(
        f"space.{name}: a continuous range cannot be a grid; give grid/choice values or a step q"
    )


def grid_space(dists: dict[str, BaseDistribution]) -> dict[str, list[Any]]:
    return {k: grid_values(d, k) for k, d in dists.items()}


def grid_size(dists: dict[str, BaseDistribution]) -> int:
    return math.prod(len(v) for v in grid_space(dists).values()) if dists else 1


def num_configs(spec: StudySpec, dists: dict[str, BaseDistribution]) -> int:
    """Configurations to run: the grid's size for grid, else ``num_samples``."""
    if spec.algorithm_name == "grid":
        return grid_size(dists)
    return spec.num_samples


# ---------------------------------------------------------------- samplers


def make_sampler(
    spec: StudySpec, dists: dict[str, BaseDistribution]
) -> optuna.samplers.BaseSampler:
    """The study's searcher from the registry (``fer_core.tune.searchers``), seed 0 by default.

    The runner supplies what a searcher takes besides the study's options: the grid's values
    (so grids appear in optuna-dashboard too) and ``n_trials`` = ``num_samples`` (GWO's budget).
    """
    opts = {k: v for k, v in spec.algorithm.items() if k != "name"}
    opts.setdefault("seed", 0)
    name = spec.algorithm_name
    needs = runner_args(name)
    if "search_space" in needs:
        opts["search_space"] = grid_space(dists)
    if "n_trials" in needs:
        opts.setdefault("n_trials", spec.num_samples)
    return create_searcher(name, **opts)


def open_study(
    spec: StudySpec, storage_url: str, dists: dict[str, BaseDistribution]
) -> optuna.Study:
    """Create or load the Optuna study ``<study>-<profile>`` with the study's sampler."""
    return optuna.create_study(
        study_name=spec.study_name,
        storage=open_storage(storage_url),
        sampler=make_sampler(spec, dists),
        direction="maximize" if spec.mode == "max" else "minimize",
        load_if_exists=True,
    )


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """Sample one parameter through the public ``suggest_*`` API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"unsupported distribution for {name}: {dist!r}")


def sample_config(
    trial: optuna.Trial,
    dists: dict[str, BaseDistribution],
    when: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Sample every active parameter in order; a ``when`` parameter only if its condition holds."""
    params: dict[str, Any] = {}
    for name, dist in dists.items():
        cond = when.get(name)
        if cond and any(params.get(k) != v for k, v in cond.items()):
            continue
        params[name] = suggest(trial, name, dist)
    return params
