"""Optuna storage, samplers and search-space plumbing for the study runner.

The Optuna storage is the source of truth for configurations (PITFALLS.md: Tune's own searcher
checkpoint goes stale when a driver is killed). Default storage: ``sqlite:///<run_dir>/optuna.db``;
``--storage URL`` takes any SQLAlchemy URL. The Optuna study name is ``<study>-<profile>``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

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


#: What a masked password reads as in logs, manifests, ``trials.csv`` and reports.
MASK = "***"
#: Seconds a server (PostgreSQL, MySQL) may take to accept a connection before the run fails.
CONNECT_TIMEOUT_S = 10


class StorageError(RuntimeError):
    """The ``--storage`` URL cannot be opened (unreachable server, wrong password, bad URL)."""


def _parse(url: str):
    from sqlalchemy.engine import make_url

    return make_url(url)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (every other part kept, as typed)."""
    try:
        parsed = _parse(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: nothing to mask reliably
        return url
    if not parsed.password:
        return url
    password = str(parsed.password)
    out = url
    for form in {password, quote_plus(password), quote(password, safe="")}:
        out = out.replace(f":{form}@", f":{MASK}@")
    return out


def mask_text(text: str, url: str | None) -> str:
    """``text`` with the password of ``url`` masked wherever it appears (server messages too)."""
    if not url:
        return text
    try:
        password = _parse(url).password
    except Exception:  # noqa: BLE001
        return text
    if not password:
        return text
    password = str(password)
    text = text.replace(url, mask_url(url))
    forms = {password, quote_plus(password), quote(password, safe="")}
    for form in forms:  # a short password is masked only where it sits in a URL
        text = text.replace(f":{form}@", f":{MASK}@") if len(form) < 4 else text.replace(form, MASK)
    return text


def connect_url(url: str) -> str:
    """The URL SQLAlchemy opens: ``postgresql://`` / ``postgres://`` go through psycopg 3 (the
    project's driver; SQLAlchemy's default for ``postgresql://`` is psycopg2), and a masked
    password (``***``, read back from a manifest) is dropped, so libpq takes it from
    ``PGPASSWORD`` or ``~/.pgpass``."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if f":{MASK}@" in url:
        url = url.replace(f":{MASK}@", "@")
    return url


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An RDB storage; SQLite gets a generous lock timeout (the driver is its only writer), a
    server a connect timeout (an unreachable one fails within seconds). Failures raise
    :class:`StorageError` with the masked URL, the server's message (masked) and what to check."""
    kwargs: dict[str, Any] = {}
    target = connect_url(url)
    if target.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    elif target.startswith(("postgresql", "mysql")):
        kwargs["engine_kwargs"] = {
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
            "pool_pre_ping": True,
        }
    try:
        return optuna.storages.RDBStorage(target, **kwargs)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, driver and URL errors alike
        raise StorageError(storage_hint(url, exc)) from None


def storage_hint(url: str, exc: BaseException) -> str:
    """One message for a storage that does not open: masked URL, server message, what to check."""
    cause = exc
    while getattr(cause, "orig", None) is not None or cause.__cause__ is not None:
        cause = getattr(cause, "orig", None) or cause.__cause__
    message = " ".join(str(cause).split())[:400] or type(cause).__name__
    hint = "check the URL's host, port and database name, that the server runs and accepts "
    hint += "connections from this machine (listen_addresses, pg_hba.conf), and the user's password"
    hint += " (in the URL, PGPASSWORD or ~/.pgpass)" if "postgres" in url else ""
    return mask_text(f"--storage {mask_url(url)}: cannot open the storage: {message}; {hint}", url)


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
    """Configurations to run: the grid's size (conditionals merged) for grid, else
    ``num_samples``."""
    ordered = ordered_configs(spec)
    return len(ordered) if ordered is not None else spec.num_samples


def ordered_configs(spec: StudySpec) -> list[dict[str, Any]] | None:
    """Grids and ablations: every configuration in ``--dry-run`` order (``study/plan.py``), so
    config id = Optuna trial number = dry-run index; None for samplers (ask order)."""
    if spec.ablation_rows:
        return [{"row": name} for name in spec.ablation_rows]
    if spec.algorithm_name != "grid":
        return None
    from fer_core.study.plan import grid_points
    from fer_core.tune.spaces import entries

    return grid_points(entries(spec.space))


class PlanOrderSampler(optuna.samplers.BaseSampler):
    """Grids and ablations in dry-run order: trial number ``n`` takes configuration ``n``.

    Stateless (the trial number is in the storage), so a resumed run continues the same order.
    """

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        self.configs = list(configs)

    def infer_relative_search_space(self, study, trial) -> dict:  # noqa: ARG002
        return {}

    def sample_relative(self, study, trial, search_space) -> dict:  # noqa: ARG002
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):  # noqa: ARG002
        config = self.configs[trial.number]
        if param_name not in config:
            raise ValueError(f"grid configuration {trial.number} has no value for {param_name}")
        return config[param_name]


# ---------------------------------------------------------------- samplers


def make_sampler(
    spec: StudySpec, dists: dict[str, BaseDistribution]
) -> optuna.samplers.BaseSampler:
    """The study's searcher from the registry (``fer_core.tune.searchers``), seed 0 by default;
    grids and ablations run in dry-run order (:class:`PlanOrderSampler`).

    The runner supplies what a searcher takes besides the study's options: the grid's values
    (so grids appear in optuna-dashboard too) and ``n_trials`` = ``num_samples`` (GWO's budget).
    """
    ordered = ordered_configs(spec)
    if ordered is not None:
        return PlanOrderSampler(ordered)
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
