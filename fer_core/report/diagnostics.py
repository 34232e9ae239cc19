"""Rows that look identical, and what the method says about them.

A knob that changes nothing gives rows whose every metric equals another row's, seed by seed: in
001's revision study every threshold above Eq. 4's largest gap revises no candidate set, so those
rows repeat one run. A reader who sees three identical rows suspects the knob is not applied. So
reports flag such rows (the ``identical to`` column names the others) and show the methods'
declared diagnostic metrics beside every row (``Method.diagnostic_metrics``: ``pll/revised`` for
PLL, see docs/INTERFACES.md), which say why.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from fer_core.report.cells import cell_stats
from fer_core.report.collect import RunData, metric_column
from fer_core.report.tables import Table, value_text


def identical_groups(cells: pd.DataFrame) -> list[tuple[str, list]]:
    """``[(run, [key, ...])]``: keys of one run whose seed values agree in every shown metric
    (to 1e-12), among keys with finished seeds; only groups of two or more."""
    out: list[tuple[str, list]] = []
    if cells.empty:
        return out
    for run, grp in cells.groupby("run", sort=False):
        signature: dict[object, list] = {}
        keys: list = []
        for key, sub in grp.groupby(grp["key"].astype(str), sort=False):
            if (sub["n"] == 0).any():
                continue
            sig = tuple(
                (m, tuple(round(float(v), 12) for v in vals))
                for m, vals in sorted(zip(sub["metric"], sub["values"]))
            )
            signature.setdefault(sig, []).append(sub["key"].iloc[0])
            keys.append(key)
        out.extend((str(run), ks) for ks in signature.values() if len(ks) > 1)
    return out


def declared_diagnostics() -> list[str]:
    """Every registered method's ``diagnostic_metrics`` (imported only when a report needs them)."""
    from fer_core.methods import METHODS  # the registry imports torch: only on identical rows

    names: list[str] = []
    for name in METHODS.names():
        for metric in getattr(METHODS.get(name), "diagnostic_metrics", ()):
            if metric not in names:
                names.append(metric)
    return names


def add_diagnostics(
    table: Table, runs: Sequence[RunData], cells: pd.DataFrame, kind: str, source: str = "best"
) -> Table:
    """``table`` with an ``identical to`` column and the diagnostic metrics' columns when some
    rows are identical (else unchanged), and a note that says which rows and why it matters."""
    groups = identical_groups(cells)
    if not groups:
        return table
    df, bold = table.df.copy(), table.bold.copy()
    key_col = df.columns[0]
    many = len({run for run, _ in groups}) > 1 or len(runs) > 1
    for run, keys in groups:
        col = f"{run} identical to" if many else "identical to"
        if col not in df.columns:
            df[col], bold[col] = "", False
        for key in keys:
            others = ", ".join(str(k) for k in keys if str(k) != str(key))
            df.loc[df[key_col].astype(str) == str(key), col] = others
    diag = [
        m for m in declared_diagnostics() if any(metric_column(r.trials, m, source) for r in runs)
    ]
    if diag:
        dcells = cell_stats(runs, kind, diag, source)
        for (run, metric), grp in dcells.groupby(["run", "metric"], sort=False):
            col = f"{run} {metric}" if many else metric
            by_key = {str(k): r for k, r in zip(grp["key"], grp.to_dict("records"))}
            df[col] = [value_text(by_key[str(k)]) if str(k) in by_key else "–" for k in df[key_col]]
            bold[col] = False
    listed = "; ".join(
        ", ".join(map(str, keys)) + (f" ({run})" if run else "") for run, keys in groups
    )
    why = (
        f"{', '.join(diag)} beside each row shows what the method did"
        if diag
        else "the methods declare no diagnostic metric for them"
    )
    notes = [
        *table.notes,
        f"Identical rows: {listed} agree in every metric, seed by seed: the setting changed "
        f"nothing these runs measure; {why}.",
    ]
    return Table(table.name, table.title, df, bold, notes)
