"""``report.reference`` in reports: the reference configuration's own run (e.g. cross-entropy
on plurality labels under the same budget beside the PLL studies), run by ``fer-study run`` into
``<run_dir>/reference/`` (``fer_core/tune/reference.py``). Sensitivity plots draw it as a
horizontal line with a mean ± std band; tables get it as a last row, outside the tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from fer_core.report import stats
from fer_core.report.collect import DONE, RunData, get_knob, metric_column, run_of
from fer_core.report.tables import Table, col_title, value_text


def reference_label(study: dict) -> str:
    return str(get_knob(study, "report.reference.label") or "reference")


def reference_cells(
    runs: Sequence[RunData], metrics: Sequence[str], source: str = "best"
) -> pd.DataFrame:
    """One row per (run, metric) of the runs that have a reference run: ``run, metric, label,
    n, n_expected, mean, std, values, state`` (fractions, like :func:`cells.cell_stats`)."""
    records = []
    for run in runs:
        ref = run.reference
        if ref is None:
            continue
        done = ref[ref["status"] == DONE]
        for metric in metrics:
            col = metric_column(ref, metric, source)
            values = [] if col is None else done[col].dropna().astype(float).tolist()
            summ = stats.summarize(values)
            records.append(
                dict(
                    run=run.label,
                    metric=metric,
                    key=f"reference: {reference_label(run.study)}",
                    n=summ.n,
                    n_expected=len(ref),
                    mean=summ.mean,
                    std=summ.std,
                    values=values,
                    state="complete" if summ.n and summ.n >= len(ref) else "partial",
                )
            )
    return pd.DataFrame.from_records(records)


def add_reference_row(table: Table, cells: pd.DataFrame, ref: pd.DataFrame) -> Table:
    """``table`` with a last row holding each run's reference value in that run's metric
    columns (``–`` elsewhere), or unchanged without a reference run."""
    if ref.empty or cells.empty:
        return table
    runs_seen = list(dict.fromkeys(cells["run"]))
    metrics = list(dict.fromkeys(cells["metric"]))
    row = {c: "" if c != table.df.columns[0] else ref["key"].iloc[0] for c in table.df.columns}
    for run_label in runs_seen:
        own = run_of(run_label, set(ref["run"]))  # the run a series (a 2-D grid's line) is of
        for metric in metrics:
            title = col_title(run_label, metric, len(runs_seen) > 1, len(metrics) > 1)
            hit = ref[(ref["run"] == own) & (ref["metric"] == metric)]
            if title in row and not hit.empty:
                row[title] = value_text(hit.iloc[0].to_dict())
    df = pd.concat([table.df, pd.DataFrame([row])], ignore_index=True)
    bold = pd.concat(
        [table.bold, pd.DataFrame([{c: False for c in table.bold.columns}])], ignore_index=True
    )
    n = sorted({int(v) for v in ref["n"] if v > 0})
    notes = [
        *table.notes,
        f"{ref['key'].iloc[0]}: report.reference, run beside the study in its own run directory "
        f"(RUN_DIR/reference/, n = {'-'.join(map(str, n)) or 0} seeds); not part of the tests.",
    ]
    return Table(table.name, table.title, df, bold, notes)


def draw_reference(ax, ref: pd.DataFrame, metric: str, factor: float, colors: dict) -> None:
    """A horizontal line at each run's reference mean and a ±std band, labelled in the legend."""
    if ref.empty:
        return
    for rec in ref[ref["metric"] == metric].to_dict("records"):
        if rec["n"] == 0 or math.isnan(rec["mean"]):
            continue
        mean = rec["mean"] * factor
        std = 0.0 if math.isnan(rec["std"]) else rec["std"] * factor
        color = colors.get(rec["run"], "0.35")
        ax.axhline(
            mean, color=color, linestyle="-.", linewidth=1.2, label=f"{rec['key']} (n={rec['n']})"
        )
        if std > 0:
            ax.axhspan(mean - std, mean + std, color=color, alpha=0.12, linewidth=0)
