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
    get_knob,
    metric_column,
    report_metrics,
    run_of,
    same_value,
    series_name,
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
    (``state``: complete | partial | pending | running | error | pruned); ``delta, p_welch,
    p_welch_holm, p_mwu, p_mwu_holm, significant`` against the baseline row of an ablation or the
    ``report.baseline`` point of a sensitivity study (NaN without one; Holm within each (run,
    metric) column); ``best, p_best, tied_best`` against the column's best mean; plus ``paper``
    (the reference number, percent).
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
        for series, sub in _series(run, kind, trials, kcol):
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
                            run=series_name(run.label, series),
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
    if not df.empty:
        df = _add_comparisons(df, runs, kind)
        df = _add_best_ties(df, runs)
    return df


def _series(
    run: RunData, kind: str, trials: pd.DataFrame, kcol: str | None
) -> list[tuple[str, pd.DataFrame]]:
    """Split a sensitivity run by the other searched knobs (a 2-D grid such as lr x warm-up
    gives one line per warm-up value): ``[(series label, trials of that series)]`` (``""``: one
    series, the whole run).

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
        out.append((label, trials[mask]))
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


def comparison_baseline(study: dict, kind: str) -> Any | None:
    """What each cell is tested against: an ablation's baseline row, or a sensitivity study's
    ``report.baseline`` point (typically the paper's default); None: no test."""
    if kind == "ablation":
        return baseline_row(study) or None
    if kind == "sensitivity":
        return get_knob(study, "report.baseline")
    return None


def _add_comparisons(df: pd.DataFrame, runs: Sequence[RunData], kind: str) -> pd.DataFrame:
    """Delta, Welch / U p-values (raw and Holm within each (run, metric) column) and
    ``significant`` against :func:`comparison_baseline`; NaN / False where there is none."""
    base = {r.label: comparison_baseline(r.study, kind) for r in runs}
    cols = {c: [] for c in ("delta", "p_welch", "p_welch_holm", "p_mwu", "p_mwu_holm")}
    df = df.reset_index(drop=True)
    out = {i: None for i in df.index}
    for (run, _metric), grp in df.groupby(["run", "metric"], sort=False):
        b = base.get(run_of(run, base))
        bkey = next((str(k) for k in grp["key"] if b is not None and same_value(k, b)), None)
        groups = {str(k): v for k, v in zip(grp["key"], grp["values"])}
        comp = stats.compare_column(groups, bkey) if bkey is not None else {}
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


def _add_best_ties(df: pd.DataFrame, runs: Sequence[RunData]) -> pd.DataFrame:
    """``best`` (the best mean of its (run, metric) column), ``p_best`` (Welch against the best,
    Holm within the column) and ``tied_best``: the best, or not significantly different from it
    (p_best >= alpha). Untestable cells (fewer than 2 seeds on either side) are not tied."""
    from fer_core.report.tables import best_key

    study = runs[0].study
    best_col, p_col, tied_col = [], [], []
    df = df.reset_index(drop=True)
    p_of: dict[int, float] = {}
    best_of: dict[int, bool] = {}
    for (_run, metric), grp in df.groupby(["run", "metric"], sort=False):
        best = best_key(grp, metric, study)
        bkey = None if best is None else str(best)
        groups = {str(k): v for k, v in zip(grp["key"], grp["values"])}
        ps = stats.tied_with_best(groups, bkey) if bkey is not None else {}
        for i, k in zip(grp.index, grp["key"]):
            best_of[i] = bkey is not None and str(k) == bkey
            p_of[i] = ps.get(str(k), math.nan)
    for i in df.index:
        p = p_of.get(i, math.nan)
        best_col.append(best_of.get(i, False))
        p_col.append(p)
        tied_col.append(best_of.get(i, False) or (not math.isnan(p) and p >= stats.ALPHA))
    df["best"], df["p_best"], df["tied_best"] = best_col, p_col, tied_col
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
