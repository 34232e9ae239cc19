"""Read a study's result files into pandas (the only inputs a report has).

A run directory ``runs/<study>-<profile>/`` (INTERFACES.md "Run directory") holds

* ``study.yaml``: the resolved study, read with ``yaml.safe_load`` as a plain dict (reports do not
  depend on the study schema's classes),
* ``manifest.json``: provenance (study hash, git commit, versions, hardware, data hash, command),
* ``trials.csv``: one row per Ray Tune trial with ``config_id, seed, tune_trial_id, optuna_trial,
  profile, dataset, row, status, error, wall_s, epochs, param.<path>..., final.<metric>...,
  best.<metric>...``,
* ``optuna.db``: the Optuna storage (study name ``<study>-<profile>``), used by search reports.

Nothing here imports the trainer. Missing files make an empty (partial) run, never an error, so a
report can be written while a study is still running.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fer_core.trials_csv import BASE_COLUMNS, STATUSES  # noqa: F401 (STATUSES: assemble.py)

#: Trial states (INTERFACES.md); only TERMINATED trials enter the statistics.
DONE = "TERMINATED"


def get_knob(mapping: Any, path: str, default: Any = None) -> Any:
    """Look up a dotted knob path in a dict whose keys may be dotted or nested (or mixed).

    ``get_knob({"method": {"revision.threshold": 0.3}}, "method.revision.threshold") == 0.3``.
    """
    if not isinstance(mapping, dict):
        return default
    if path in mapping:
        return mapping[path]
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        head, tail = ".".join(parts[:i]), ".".join(parts[i:])
        if head in mapping and isinstance(mapping[head], dict):
            found = get_knob(mapping[head], tail, _MISSING)
            if found is not _MISSING:
                return found
    return default


_MISSING = object()


def val_fraction_zero(study: dict) -> bool:
    """True when the study selects on test (``data.val_fraction = 0``, the papers' practice)."""
    for scope in (study.get("base") or {}, study):
        v = get_knob(scope, "data.val_fraction")
        if v is not None:
            return _as_float(v) == 0.0
    return False


def study_seeds(study: dict) -> list[Any]:
    """The study's seeds as a list (``seeds: 3`` means ``[0, 1, 2]``)."""
    seeds = study.get("seeds", [0])
    if isinstance(seeds, int):
        return list(range(seeds))
    return list(seeds or [0])


SERIES_SEP = " · "  # a run's label, then one of its series (a 2-D grid's other knob values)


def series_name(run_label: str, series: str) -> str:
    """The name of one line of a run: ``run · series``, or either alone when the other is empty
    (a curated report's one run has no label: its lines read ``warmup_epochs=0``)."""
    return SERIES_SEP.join(p for p in (run_label, series) if p)


def run_of(name: str, run_labels: Iterable[str]) -> str:
    """The run label among ``run_labels`` that the series ``name`` belongs to (the longest that
    names it; the one unlabelled run's label ``""`` matches every name)."""
    hits = [r for r in run_labels if not r or name == r or name.startswith(r + SERIES_SEP)]
    return max(hits, key=len, default=name)


def same_value(a: Any, b: Any) -> bool:
    """Equality that treats numbers written differently (``0.001`` / ``"1e-3"``) as equal."""
    fa, fb = _as_float(a), _as_float(b)
    if fa is not None and fb is not None:
        return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def _as_float(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


@dataclass
class RunData:
    """Everything a report reads from one run directory.

    ``trials`` has one row per Tune trial (INTERFACES.md columns); it is empty (with the base
    columns) when ``trials.csv`` does not exist yet. ``notes`` collects what was missing.
    """

    run_dir: Path
    study: dict
    manifest: dict
    trials: pd.DataFrame
    name: str
    profile: str
    dataset: str
    notes: list[str] = field(default_factory=list)
    label: str = ""
    study_text: str = ""
    # report.reference's own run (``<run_dir>/reference/trials.csv``), None when there is none
    reference: pd.DataFrame | None = None

    @property
    def storage_url(self) -> str | None:
        """The Optuna storage: the manifest's URL, else ``optuna.db`` in the run directory.

        A SQLite URL whose file is gone (a run directory copied elsewhere) falls back to the
        run directory's ``optuna.db``; a missing database is never created.
        """
        url = self.manifest.get("storage") or self.manifest.get("storage_url")
        if isinstance(url, str) and url.startswith("sqlite:///"):
            if not Path(url.removeprefix("sqlite:///")).is_file():
                url = None
        if isinstance(url, str) and url:
            return url
        db = self.run_dir / "optuna.db"
        return f"sqlite:///{db.resolve()}" if db.is_file() else None

    @property
    def optuna_study_name(self) -> str:
        return str(self.manifest.get("optuna_study") or f"{self.name}-{self.profile}")

    def first_trial_config(self) -> str | None:
        """Text of one trial's resolved trainer config (``trials/<id>/config.yaml``), if any."""
        trials_dir = self.run_dir / "trials"
        if not trials_dir.is_dir():
            return None
        for cfg in sorted(trials_dir.glob("*/config.yaml")):
            return cfg.read_text(encoding="utf-8")
        return None


def _statuses(column: pd.Series) -> pd.Series:
    """trials.csv states upper-cased, a missing state read as PENDING."""
    return column.fillna("PENDING").astype(str).str.upper()


def load_run(run_dir: str | Path) -> RunData:
    """Read one run directory; raises ValueError only when it is not a run directory at all."""
    run_dir = Path(run_dir)
    study_file, trials_file = run_dir / "study.yaml", run_dir / "trials.csv"
    if not run_dir.is_dir() or not (study_file.is_file() or trials_file.is_file()):
        raise ValueError(
            f"run directory {str(run_dir)!r} has neither study.yaml nor trials.csv; "
            "expected a directory written by 'fer-study run' (runs/<study>-<profile>/)"
        )
    notes: list[str] = []
    study: dict = {}
    study_text = ""
    if study_file.is_file():
        study_text = study_file.read_text(encoding="utf-8")
        study = yaml.safe_load(study_text) or {}
    else:
        notes.append("study.yaml missing: the report uses trials.csv only")
    manifest: dict = {}
    if (run_dir / "manifest.json").is_file():
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    else:
        notes.append("manifest.json missing: no provenance for this run")
    if trials_file.is_file() and trials_file.stat().st_size > 0:
        trials = pd.read_csv(trials_file)
    else:
        trials = pd.DataFrame(columns=list(BASE_COLUMNS))
        notes.append("trials.csv missing or empty: no trial has finished yet")
    for col in BASE_COLUMNS:
        if col not in trials.columns:
            trials[col] = pd.NA
    trials["status"] = _statuses(trials["status"])

    name = str(study.get("name") or _split_run_name(run_dir.name)[0])
    profile = _first(trials["profile"]) or study.get("profile") or manifest.get("profile")
    profile = str(profile or _split_run_name(run_dir.name, name)[1] or "default")
    dataset = _first(trials["dataset"]) or _dataset_of(study, profile) or profile
    reference = None
    ref_file = run_dir / "reference" / "trials.csv"
    if ref_file.is_file():
        reference = pd.read_csv(ref_file)
        reference["status"] = _statuses(reference["status"])
    elif get_knob(study, "report.reference"):
        notes.append("report.reference has not run yet (no reference/trials.csv)")
    return RunData(
        run_dir,
        study,
        manifest,
        trials,
        name,
        profile,
        str(dataset),
        notes,
        study_text=study_text,
        reference=reference,
    )


def _first(series: pd.Series) -> str | None:
    vals = series.dropna()
    return str(vals.iloc[0]) if len(vals) else None


def _split_run_name(stem: str, name: str | None = None) -> tuple[str, str]:
    if name and stem.startswith(name + "-"):
        return name, stem[len(name) + 1 :]
    head, _, tail = stem.rpartition("-")
    return (head, tail) if head else (stem, "")


def _dataset_of(study: dict, profile: str) -> str | None:
    """The dataset name from the study (``data: rafdb``, ``data: {name: rafdb}``, ``data.name``)."""
    for scope in (study.get("base") or {}, (study.get("profiles") or {}).get(profile) or {}, study):
        data = get_knob(scope, "data")
        if isinstance(data, str):
            return data
        if isinstance(data, dict) and data.get("name"):
            return str(data["name"])
        if get_knob(scope, "data.name"):
            return str(get_knob(scope, "data.name"))
    return None


def resolve_sources(
    sources: str | Path | Sequence[str | Path], runs_root: str | Path | None = None
) -> list[Path]:
    """Turn ``RUN_DIR...`` or one ``STUDY_FILE`` into run directories.

    A study file (``*.yaml``) means ``runs/<name>-<profile>`` for every profile of the study that
    exists, looked up under ``runs_root`` (default: ``./runs`` and the ``runs/`` next to the
    study file's ``studies/`` folder).
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    dirs: list[Path] = []
    for src in map(Path, sources):
        if src.is_file() and src.suffix in (".yaml", ".yml") and src.name != "study.yaml":
            dirs.extend(_runs_of_study_file(src, runs_root))
        elif src.is_file() and src.name in ("study.yaml", "trials.csv"):
            dirs.append(src.parent)
        elif src.is_dir():
            dirs.append(src)
        else:
            raise ValueError(
                f"report source {str(src)!r} does not exist; give run directories "
                "(runs/<study>-<profile>) or one study file (studies/<name>.yaml)"
            )
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def _runs_of_study_file(path: Path, runs_root: str | Path | None) -> list[Path]:
    study = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    name = study.get("name") or path.stem
    roots = (
        [Path(runs_root)] if runs_root else [Path("runs"), path.resolve().parent.parent / "runs"]
    )
    profiles = list((study.get("profiles") or {}).keys())
    found: list[Path] = []
    for root in roots:
        candidates = (
            [root / f"{name}-{p}" for p in profiles] if profiles else sorted(root.glob(f"{name}-*"))
        )
        found.extend(c for c in candidates if c.is_dir())
    if not found:
        where = " or ".join(str(r) for r in roots)
        raise ValueError(
            f"study {name!r} ({path}) has no run directory under {where}; expected "
            f"{name}-<profile> for profiles {profiles or ['<any>']}: run 'fer-study run {path}' first"
        )
    return found


def titled(text: str, label: str, detail: str = "") -> str:
    """``text (label: detail)``, without empty parentheses for an unlabelled run (a curated
    report's one run, loaded by ``load_run``)."""
    inner = ": ".join(t for t in (label, detail) if t)
    return f"{text} ({inner})" if inner else text


def load_runs(
    sources: str | Path | Sequence[str | Path], runs_root: str | Path | None = None
) -> list[RunData]:
    """Load every run directory of ``sources`` and give each a unique display label."""
    runs = [load_run(d) for d in resolve_sources(sources, runs_root)]
    if not runs:
        raise ValueError("no run directories to report on")
    kinds = {report_kind(r.study) for r in runs if r.study}
    if len(kinds) > 1:
        raise ValueError(
            f"report.kind differs between the run directories ({sorted(kinds)}); "
            "combine only runs of the same kind of study"
        )
    _label(runs)
    return runs


def _label(runs: Iterable[RunData]) -> None:
    runs = list(runs)
    datasets = [r.dataset for r in runs]
    for r in runs:
        unique = datasets.count(r.dataset) == 1
        r.label = r.dataset if unique else f"{r.dataset} ({r.profile})"
    labels = [r.label for r in runs]
    for r in runs:
        if labels.count(r.label) > 1:
            r.label = f"{r.label} [{r.run_dir.name}]"


def report_kind(study: dict) -> str:
    """``report.kind``, else inferred: ablation block -> ablation, grid space -> sensitivity."""
    kind = get_knob(study, "report.kind")
    if kind:
        if kind not in ("sensitivity", "ablation", "search"):
            raise ValueError(
                f"report.kind = {kind!r} is not allowed; use sensitivity, ablation or search"
            )
        return str(kind)
    if study.get("ablation") or study.get("ablation_rows"):
        return "ablation"
    algo = study.get("algorithm")
    algo = algo if isinstance(algo, str) else get_knob(study, "algorithm.name") or "grid"
    return "sensitivity" if algo == "grid" else "search"


def report_metrics(study: dict) -> list[str]:
    """The metrics a report shows: ``report.metrics``, else the reference metric / study metric."""
    metrics = get_knob(study, "report.metrics")
    if isinstance(metrics, str):
        metrics = [metrics]
    if metrics:
        return [str(m) for m in metrics]
    ref = get_knob(study, "reference.metric")
    return [str(ref or study.get("metric") or "val/acc")]


def metric_column(trials: pd.DataFrame, metric: str, source: str = "best") -> str | None:
    """The trials.csv column holding ``metric``: ``best.<m>`` (or ``final.<m>``), else a bare name."""
    order = [f"{source}.{metric}", "best." + metric, "final." + metric, metric]
    return next((c for c in order if c in trials.columns), None)


def dedupe_trials(trials: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One trial per (keys..., seed): a TERMINATED one if any (the last), else the last attempt.

    Retries (``failure.max_retries``) and resumed studies can write several rows per seed.
    """
    if trials.empty:
        return trials
    df = trials.copy()
    df["_order"] = range(len(df))
    df["_done"] = (df["status"] == DONE).astype(int)
    df = df.sort_values(["_done", "_order"])
    by = [*keys, "seed"]
    key_df = df[by].astype(str)
    df = df.loc[~key_df.duplicated(keep="last")]
    return df.sort_values("_order").drop(columns=["_order", "_done"])
