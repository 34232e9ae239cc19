"""Paper-style tables: ablation tables (000 Table II, 001 Table VIII, 003 Table IV, 004 Tables
10-15) and sensitivity tables (the numbers behind 000 Fig. 6, 001 Figs. 6-7, 002 Fig. 5, 003 Fig. 8).

Two steps: :func:`fer_core.report.cells.cell_stats` turns trials into a long numeric frame (one
row per run x key x metric, fractions as in trials.csv, statistics per
:mod:`fer_core.report.stats`); the
``*_table`` functions format it into a :class:`Table` of display strings (percent for fraction
metrics, ``mean ± std``, ``↑``/``↓`` deltas, ``✓`` components, p-values, the paper's numbers),
which :mod:`fer_core.report.render` turns into Markdown, LaTeX, HTML or CSV.

Missing cells are never dropped: a configuration without finished seeds shows
``n/a (pending)`` (or ``running``, ``error``, ``pruned``); a partial one shows ``(2/3 seeds)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fer_core.report import stats
from fer_core.report.collect import (
    RunData,
    get_knob,
    same_value,
)
from fer_core.report.design import (
    ablation_rows,
    baseline_row,
    optimum_of,
    paper_values,
    sensitivity_x,
)

FRACTION_METRICS = {"acc", "uar", "f1", "acc_true", "coverage", "disamb_acc", "war", "precision"}


@dataclass
class Table:
    """Display strings (``df``, no index) with a same-shaped bold mask and notes under the table."""

    name: str
    title: str
    df: pd.DataFrame
    bold: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def is_fraction(metric: str) -> bool:
    """Metrics stored as fractions and shown as percentages (``test/acc`` -> ``92.35``)."""
    last = metric.rsplit("/", 1)[-1]
    return last in FRACTION_METRICS or last.startswith("acc")


def scale(metric: str) -> float:
    return 100.0 if is_fraction(metric) else 1.0


def fmt_num(v: float, metric: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v * 100:.2f}" if is_fraction(metric) else f"{v:.4g}"


def fmt_delta(d: float, metric: str) -> str:
    if math.isnan(d):
        return ""
    arrow = "↑" if d > 0 else "↓" if d < 0 else "="
    return f"{arrow} {fmt_num(abs(d), metric)}"


def fmt_p(p: float) -> str:
    return "–" if math.isnan(p) else f"{p:.3g}"


# ----------------------------------------------------------------------------- display tables
def col_title(label: str, metric: str, many_runs: bool, many_metrics: bool) -> str:
    if many_runs and many_metrics:
        return f"{label} {metric}"
    return label if many_runs else metric


def value_text(r: dict, delta: float | None = None) -> str:
    """``mean ± std [↑ delta] [(n/N seeds)]``, or ``n/a (<state>)`` for a cell without values."""
    if r["n"] == 0:
        return f"n/a ({r['state']})"
    text = fmt_num(r["mean"], r["metric"])
    if not math.isnan(r["std"]):
        text += f" ± {fmt_num(r['std'], r['metric'])}"
    if delta is not None and not math.isnan(delta):
        text += f" {fmt_delta(delta, r['metric'])}"
    if r["state"] == "partial":
        text += f" ({r['n']}/{r['n_expected']} seeds)"
    return text


def seeds_text(cells: pd.DataFrame) -> str:
    """How many seeds stand behind each finished cell: ``n = 3 seeds per cell`` (or a range)."""
    ns = sorted({int(n) for n in cells["n"] if n > 0}) if not cells.empty else []
    if not ns:
        return "no finished seeds yet"
    span = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    return f"n = {span} seed{'s' if ns[-1] > 1 else ''} per cell"


def ties_note(cells: pd.DataFrame) -> str:
    """The caption of the best marking: the test behind it, or why there is none."""
    if cells.empty or not (cells["n"] > 1).any():
        return "bold: the best mean per column (single seeds: no test, so ties are not marked)."
    return (
        "bold: the best mean per column and every value not significantly different from it "
        f"(Welch's t-test against the best, Holm-corrected within the column, p ≥ {stats.ALPHA}); "
        "with fewer than 2 seeds a value cannot be tested and is not marked."
    )


def _paper_text(values: dict[Any, float], key: Any, baseline: Any | None) -> str:
    v = next((val for k, val in values.items() if same_value(k, key)), math.nan)
    if math.isnan(v):
        return "–"
    text = f"{v:.2f}"
    b = next((val for k, val in values.items() if same_value(k, baseline)), math.nan)
    if baseline is not None and not same_value(key, baseline) and not math.isnan(b):
        text += f" {fmt_delta((v - b) / 100.0, 'acc')}"
    return text


def ablation_table(runs: Sequence[RunData], cells: pd.DataFrame) -> Table:
    """Rows as in the study, ✓ per component, value / p columns per (run, metric), paper's numbers."""
    study = runs[0].study
    rows = ablation_rows(study)
    settings = dict(rows)
    keys = list(dict.fromkeys([str(k) for k in cells["key"]])) if not cells.empty else []
    ref_values = paper_values(study, "ablation")
    # rows the paper prints that this study cannot run (e.g. 001 Table VII's MoCo): listed last,
    # with the paper's numbers and "not available" in our columns
    paper_only = [
        str(k)
        for values in ref_values.values()
        for k in values
        if not any(same_value(k, x) for x in keys)
    ]
    paper_only = list(dict.fromkeys(paper_only))
    keys = keys + paper_only
    components: dict = get_knob(study, "report.components") or {}
    base = baseline_row(study)
    data: dict[str, list[str]] = {"Row": keys}
    bold: dict[str, list[bool]] = {"Row": [False] * len(keys)}
    for title, path in components.items():
        data[title] = [
            "" if k in paper_only else _check(_setting(settings.get(k, {}), study, path))
            for k in keys
        ]
        bold[title] = [False] * len(keys)
    runs_seen = list(dict.fromkeys(cells["run"])) if not cells.empty else []
    metrics = list(dict.fromkeys(cells["metric"])) if not cells.empty else []
    any_mwu = not cells.empty and cells["p_mwu"].notna().any()
    ref = study.get("reference") or {}
    used_ref: set[str] = set()
    for run_label in runs_seen:
        for metric in metrics:
            grp = cells[(cells["run"] == run_label) & (cells["metric"] == metric)]
            by_key = {str(k): r for k, r in zip(grp["key"], grp.to_dict("records"))}
            title = col_title(run_label, metric, len(runs_seen) > 1, len(metrics) > 1)
            recs = [by_key.get(k) for k in keys]
            data[title] = [
                value_text(r, None if k == base else r["delta"])
                if r
                else ("not available" if k in paper_only else "n/a")
                for k, r in zip(keys, recs)
            ]
            bold[title] = [bool(r and r["significant"]) for r in recs]
            data[f"{title} p"] = [
                fmt_p(r["p_welch_holm"]) + ("*" if r["significant"] else "") if r else "–"
                for r in recs
            ]
            bold[f"{title} p"] = [False] * len(keys)
            if any_mwu:
                data[f"{title} p(U)"] = [fmt_p(r["p_mwu_holm"]) if r else "–" for r in recs]
                bold[f"{title} p(U)"] = [False] * len(keys)
            dataset = grp["dataset"].iloc[0] if len(grp) else ""
            if dataset in ref_values and (not ref.get("metric") or ref["metric"] == metric):
                used_ref.add(dataset)
                data[f"{title} paper"] = [_paper_text(ref_values[dataset], k, base) for k in keys]
                bold[f"{title} paper"] = [False] * len(keys)
    for dataset, values in ref_values.items():
        if dataset not in used_ref:
            data[f"paper {dataset}"] = [_paper_text(values, k, base) for k in keys]
            bold[f"paper {dataset}"] = [False] * len(keys)
    single = len(keys) == 1  # one row (e.g. a seed-variance table): nothing to compare with
    tests = (
        "one row: no baseline to compare with, so no difference and no test."
        if single
        else f"↑/↓: difference to the baseline row '{base}'. "
        f"p: Welch's t-test against the baseline, Holm-corrected within each column; "
        f"* and bold: p < {stats.ALPHA}."
        + (
            f" p(U): Mann-Whitney U (both groups ≥ {stats.MIN_SEEDS_MWU} seeds), Holm-corrected."
            if any_mwu
            else f" Mann-Whitney U is reported only where both groups have ≥ {stats.MIN_SEEDS_MWU} seeds."
        )
    )
    notes = [f"Mean ± std (ddof=1) over seeds, {seeds_text(cells)}; " + tests]
    if ref_values:
        notes.append(
            f"paper: {ref.get('source') or 'the paper'} ({ref.get('metric') or 'same metric'}), "
            "percent as printed"
            + ("." if single else ", with its own difference to the baseline row.")
        )
    if paper_only:
        notes.append(
            f"not available: {', '.join(paper_only)} (rows the paper reports that this study "
            "does not run)."
        )
    if ref.get("note"):
        notes.append(f"paper note: {ref['note']}")
    return Table("ablation", "Ablation", pd.DataFrame(data), pd.DataFrame(bold), notes)


def _setting(row_set: dict, study: dict, path: str) -> Any:
    value = get_knob(row_set, path, None)
    return get_knob(study.get("base") or {}, path, True) if value is None else value


def _check(value: Any) -> str:
    if isinstance(value, bool):
        return "✓" if value else ""
    if value is None or str(value).lower() in ("none", "off", "false", "no", "0", ""):
        return ""
    return str(value)


def sensitivity_table(runs: Sequence[RunData], cells: pd.DataFrame) -> Table:
    """Rows = values of the swept knob; per (run, metric) ``mean ± std`` (the best and the values
    tied with it bolded; difference and p against ``report.baseline`` when set) and paper."""
    study = runs[0].study
    x = sensitivity_x(study) or "x"
    keys: list[Any] = []
    for k in cells["key"] if not cells.empty else []:
        if not any(same_value(k, e) for e in keys):
            keys.append(k)
    data: dict[str, list[str]] = {x: [str(k) for k in keys]}
    bold: dict[str, list[bool]] = {x: [False] * len(keys)}
    names = [value_name(study, k) for k in keys]
    if any(names):  # report.labels, e.g. {0.9: never}: a column beside the swept values
        data["label"], bold["label"] = [n or "" for n in names], [False] * len(keys)
    runs_seen = list(dict.fromkeys(cells["run"])) if not cells.empty else []
    metrics = list(dict.fromkeys(cells["metric"])) if not cells.empty else []
    ref = study.get("reference") or {}
    baseline = get_knob(study, "report.baseline")
    ref_values = paper_values(study, "sensitivity")
    used_ref: set[str] = set()
    paper_done: set[tuple[str, str]] = set()  # one paper column per dataset, after its first line
    for run_label in runs_seen:
        for metric in metrics:
            grp = cells[(cells["run"] == run_label) & (cells["metric"] == metric)]
            recs = [
                next((r for r in grp.to_dict("records") if same_value(r["key"], k)), None)
                for k in keys
            ]
            title = col_title(run_label, metric, len(runs_seen) > 1, len(metrics) > 1)
            data[title] = [
                value_text(r, None if same_value(r["key"], baseline) else r["delta"])
                if r
                else "n/a"
                for r in recs
            ]
            bold[title] = [bool(r and r["tied_best"]) for r in recs]
            if baseline is not None:
                data[f"{title} p"] = [
                    fmt_p(r["p_welch_holm"]) + ("*" if r["significant"] else "") if r else "–"
                    for r in recs
                ]
                bold[f"{title} p"] = [False] * len(keys)
            dataset = grp["dataset"].iloc[0] if len(grp) else ""
            if (
                dataset in ref_values
                and (dataset, metric) not in paper_done
                and (not ref.get("metric") or ref["metric"] == metric)
            ):
                paper_done.add((dataset, metric))
                used_ref.add(dataset)
                data[f"{title} paper"] = [_paper_text(ref_values[dataset], k, None) for k in keys]
                bold[f"{title} paper"] = [False] * len(keys)
    for dataset, values in ref_values.items():
        if dataset not in used_ref:
            data[f"paper {dataset}"] = [_paper_text(values, k, None) for k in keys]
            bold[f"paper {dataset}"] = [False] * len(keys)
    notes = [f"Mean ± std (ddof=1) over seeds, {seeds_text(cells)}; " + ties_note(cells)]
    if baseline is None:
        notes.append(
            "No test against a reference point: the study names no report.baseline (a value of "
            f"{x}, typically the paper's default)."
        )
    else:
        notes.append(
            f"↑/↓ and p: difference to {x} = {baseline} (report.baseline) and Welch's t-test "
            f"against it, Holm-corrected within each column; * p < {stats.ALPHA}."
        )
    opt = optimum_of(study, x)
    if opt is not None:
        src = f" ({ref['source']})" if ref.get("source") else ""
        notes.append(f"Paper's optimum{src}: {x} = {opt[0]}" + (f" ({opt[1]})" if opt[1] else ""))
    if ref_values:
        notes.append(f"paper: {ref.get('source') or 'the paper'}, percent as printed.")
    if ref.get("note"):
        notes.append(f"paper note: {ref['note']}")
    return Table("sensitivity", "Sensitivity", pd.DataFrame(data), pd.DataFrame(bold), notes)


def value_name(study: dict, key: Any) -> str | None:
    """The ``report.labels`` name of a swept value (``{0.9: never}``), or None."""
    labels = (study.get("report") or {}).get("labels") or {}
    return next((v for k, v in labels.items() if same_value(k, key)), None)


def value_label(study: dict, key: Any, sep: str = " ") -> str:
    """A swept value as shown in a plot, with its ``report.labels`` name: ``0.9 (never)``."""
    name = value_name(study, key)
    return str(key) if name is None else f"{key}{sep}({name})"


def higher_is_better(metric: str, study: dict) -> bool:
    """Loss-like metrics are minimised; the study metric follows ``mode``; others are maximised."""
    if "loss" in metric.rsplit("/", 1)[-1]:
        return False
    return not (metric == study.get("metric") and study.get("mode") == "min")


def best_key(grp: pd.DataFrame, metric: str, study: dict) -> Any | None:
    """The key with the best mean among cells that have values, or None."""
    have = grp[grp["n"] > 0]
    if have.empty:
        return None
    idx = have["mean"].idxmax() if higher_is_better(metric, study) else have["mean"].idxmin()
    return have.loc[idx, "key"]
