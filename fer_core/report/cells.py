"""Cell statistics: trials -> one numeric row per (run or series, key, metric).

A *key* is an ablation row name or a value of the swept knob; a *series* is a run directory, or
for a sensitivity study over a multi-knob grid, one value combination of the other knobs.
Statistics per :mod:`fer_core.report.stats` (INTERFACES.md): mean and std (ddof=1) over the
finished seeds, and for ablations the difference to the baseline row, Welch's t-test, the
Mann-Whitney U test (>= 5 seeds each) and Holm's correction within each column. Values stay
fractions here; :mod:`fer_core.report.tables` formats them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from fer_core.report import stats
from fer_core.report.collect import (
    DONE,
    RunData,
    dedupe_trials,
    metric_column,
    report_metrics,
    same_value,
    study_seeds,
)
from fer_core.report.design import (
    baseline_row,
    expected_keys,
    grid_values,
    paper_values,
    sensitivity_x,
    space_entry,
)


def key_column(run: RunData, kind: str) -> str | None:
    if kind == "ablation":
        if run.trials["row"].notna().any():
            return "row"
        return "param.row" if "param.row" in run.trials.columns else None
    x = sensitivity_x(run.study)
    return f"param.{x}" if x and f"param.{x}" in run.trials.columns else None


def cell_stats(
    runs: Sequence[RunData], kind: str, metrics: Sequence[str] | None = None, source: str = "best"
) -> pd.DataFrame:
    """Long frame, one row per (run, key, metric), keys in study order then unexpected ones.

    Columns: ``run, profile, dataset, metric, key, n, n_expected, mean, std, values, state``
    (``state``: complete | partial | pending | running | error | pruned) and, for ablations,
    ``delta, p_welch, p_welch_holm, p_mwu, p_mwu_holm, significant`` against the baseline row
    (Holm within each (run, metric) column), plus ``paper`` (the reference number, percent).
    """
    records = []
    for run in runs:
        seeds = study_seeds(run.study)
        kcol = key_column(run, kind)
        by = ["config_id"] if run.trials["config_id"].notna().all() else [kcol]
        trials = dedupe_trials(run.trials, by) if kcol else run.trials.iloc[0:0]
        keys = list(expected_keys(run.study, kind))
        if kcol:
            for k in trials[kcol].dropna().tolist():
                if not any(same_value(k, e) for e in keys):
                    keys.append(k)
        if kind == "sensitivity" and keys and all(_is_number(k) for k in keys):
            keys.sort(key=float)
        for suffix, sub in _series(run, kind, trials, kcol):
            for metric in metrics or report_metrics(run.study):
                mcol = metric_column(run.trials, metric, source)
                for key in keys:
                    sel = sub[[same_value(v, key) for v in sub[kcol]]] if kcol else sub
                    done = sel[sel["status"] == DONE]
                    values = [] if mcol is None else done[mcol].dropna().astype(float).tolist()
                    summ = stats.summarize(values)
                    n_expected = max(len(seeds), len(sel))
                    records.append(
                        dict(
                            run=run.label + suffix,
                            profile=run.profile,
                            dataset=run.dataset,
                            metric=metric,
                            key=key,
                            n=summ.n,
                            n_expected=n_expected,
                            mean=summ.mean,
                            std=summ.std,
                            values=values,
                            state=_state(summ.n, n_expected, sel["status"].tolist()),
                            paper=reference_value(run, metric, key, kind),
                        )
                    )
    df = pd.DataFrame.from_records(records)
    if kind == "ablation" and not df.empty:
        df = _add_comparisons(df, runs)
    return df


def _series(
    run: RunData, kind: str, trials: pd.DataFrame, kcol: str | None
) -> list[tuple[str, pd.DataFrame]]:
    """Split a sensitivity run by the other searched knobs (a 2-D grid such as lr x warm-up
    gives one line per warm-up value): ``[(label suffix, trials of that series)]``.

    Expected values come from the other knobs' grids, so a series without any finished trial
    still appears (as pending); conditional knobs (``when``) that a trial lacks show as ``–``.
    """
    if kind != "sensitivity" or not kcol:
        return [("", trials)]
    space = run.study.get("space") if isinstance(run.study.get("space"), dict) else {}
    x = kcol.removeprefix("param.")
    others = [p for p in space if p != x and len(grid_values(space_entry(run.study, p))) != 1]
    others += [
        c.removeprefix("param.")
        for c in trials.columns
        if c.startswith("param.")
        and c != kcol
        and c.removeprefix("param.") not in others
        and trials[c].nunique() > 1
    ]
    if not others:
        return [("", trials)]
    combos: list[tuple] = []
    grids = [grid_values(space_entry(run.study, p)) for p in others]
    if all(grids) and not any((space_entry(run.study, p) or {}).get("when") for p in others):
        combos = list(itertools.product(*grids))
    cols = [f"param.{p}" for p in others]
    for c in cols:
        if c not in trials.columns:
            trials = trials.assign(**{c: math.nan})
    for row in trials[cols].itertuples(index=False):
        combo = tuple("–" if _isnan(v) else v for v in row)
        if not any(all(same_value(a, b) for a, b in zip(combo, c)) for c in combos):
            combos.append(combo)
    out = []
    for combo in combos:
        mask = [
            all((_isnan(t) and v == "–") or same_value(t, v) for t, v in zip(row, combo))
            for row in trials[cols].itertuples(index=False)
        ]
        label = ", ".join(f"{p.rsplit('.', 1)[-1]}={v}" for p, v in zip(others, combo))
        out.append((f" · {label}", trials[mask]))
    return out


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _state(n: int, n_expected: int, statuses: list[str]) -> str:
    if n and n >= n_expected:
        return "complete"
    if n:
        return "partial"
    for s in ("RUNNING", "ERROR", "PRUNED"):
        if s in statuses:
            return s.lower()
    return "pending"


def _add_comparisons(df: pd.DataFrame, runs: Sequence[RunData]) -> pd.DataFrame:
    base = {r.label: baseline_row(r.study) for r in runs}
    cols = {c: [] for c in ("delta", "p_welch", "p_welch_holm", "p_mwu", "p_mwu_holm")}
    df = df.reset_index(drop=True)
    out = {i: None for i in df.index}
    for (run, _metric), grp in df.groupby(["run", "metric"], sort=False):
        groups = {str(k): v for k, v in zip(grp["key"], grp["values"])}
        comp = stats.compare_column(groups, base[run]) if base[run] in groups else {}
        for i, k in zip(grp.index, grp["key"]):
            out[i] = comp.get(str(k))
    for i in df.index:
        c = out[i]
        for name in cols:
            cols[name].append(getattr(c, name) if c else math.nan)
    for name, vals in cols.items():
        df[name] = vals
    df["significant"] = [bool(out[i] and out[i].significant()) for i in df.index]
    return df


def reference_value(run: RunData, metric: str, key: Any, kind: str) -> float:
    """The paper's number (percent) for ``key`` on the run's dataset, if the reference has one."""
    ref = run.study.get("reference") or {}
    if ref.get("metric") and ref["metric"] != metric:
        return math.nan
    table = paper_values(run.study, kind).get(run.dataset) or {}
    return next((v for k, v in table.items() if same_value(k, key)), math.nan)


def numeric_stats(cells: pd.DataFrame) -> pd.DataFrame:
    """The numeric cell statistics for CSV export (fractions, raw and Holm-adjusted p-values)."""
    if cells.empty:
        return cells
    out = cells.copy()
    out["values"] = [";".join(f"{v:.6g}" for v in vals) for vals in out["values"]]
    return out
