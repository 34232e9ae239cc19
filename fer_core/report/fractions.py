"""Label-fraction tables: one column per labelled fraction, one row per setting, as the semi-
supervised papers print them (004 Tables 10, 13-15: RAF-DB 5 / 10 / 25 %).

A study gets this layout when every ablation row sets a knob ending in ``trainer.semi.fraction``
(``stages.<stage>.trainer.semi.fraction`` under a recipe; typically a ``factorial`` ablation with
a fraction factor): the other settings make the rows (``kappa=iou``), the fraction values the
columns (``5 %``). Each column
compares its rows with the baseline setting *at the same fraction* (the ablation's ``baseline``
row names it; Welch's t-test, Holm within the column, as ``cells.py`` does for plain ablations),
and the paper's numbers (``reference.values`` keyed by the full row name, e.g.
``kappa=iou,fraction=0.05``) sit in a ``paper`` column beside each fraction.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from fer_core.report import stats
from fer_core.report.collect import same_value
from fer_core.report.design import ablation_rows, baseline_row, paper_values

FRACTION_KNOB = "trainer.semi.fraction"


def fraction_factor(study: dict) -> tuple[str, list[Any]] | None:
    """``(knob path, values in study order)`` of the label fraction when every ablation row sets
    a knob ending in ``trainer.semi.fraction``, to at least two values, and the rows also differ
    in something else; else None. Works on the study file (``ablation.factors``) and on the
    resolved ``study.yaml`` of a run (factors expanded into ``ablation.rows``)."""
    rows = ablation_rows(study)
    if len(rows) < 2:
        return None
    paths = [p for p in rows[0][1] if p == FRACTION_KNOB or p.endswith("." + FRACTION_KNOB)]
    for path in paths:
        if not all(path in settings for _, settings in rows):
            continue
        values: list[Any] = []
        for _, settings in rows:
            if not any(same_value(settings[path], v) for v in values):
                values.append(settings[path])
        others = {_others_key(settings, path) for _, settings in rows}
        if len(values) >= 2 and len(others) >= 2:
            return path, values
    return None


def _others_key(settings: dict, path: str) -> str:
    return repr(sorted((k, repr(v)) for k, v in settings.items() if k != path))


def fraction_label(v: Any) -> str:
    """``0.05`` -> ``5 %``; a non-number as it is."""
    try:
        return f"{float(v) * 100:g} %"
    except (TypeError, ValueError):
        return str(v)


def row_layout(study: dict) -> dict[str, tuple[str, Any]]:
    """Ablation row name -> (setting label, fraction value). Rows with the same other settings
    share a label: the parts of their names (``kappa=iou,fraction=0.05`` -> ``kappa=iou``) that
    all of them have, else the other settings written out."""
    found = fraction_factor(study)
    if found is None:
        return {}
    path, _ = found
    rows = ablation_rows(study)
    groups: dict[str, list[str]] = {}
    for name, settings in rows:
        groups.setdefault(_others_key(settings, path), []).append(name)
    out = {}
    for name, settings in rows:
        members = groups[_others_key(settings, path)]
        parts = [p for p in name.split(",") if all(p in m.split(",") for m in members)]
        label = ",".join(parts) if len(members) > 1 and parts else ""
        if not label:
            label = ", ".join(
                f"{k.rsplit('.', 1)[-1]}={v}" for k, v in settings.items() if k != path
            )
        out[name] = (label, settings[path])
    return out


def fraction_table(runs, cells: pd.DataFrame):
    """The ablation as a setting x fraction table (module docstring): a ``tables.Table``."""
    from fer_core.report.tables import Table, fmt_p, value_text

    study = runs[0].study
    _, fractions = fraction_factor(study)
    layout = row_layout(study)
    base_label = layout.get(baseline_row(study), ("", None))[0]
    labels = list(dict.fromkeys(label for label, _ in layout.values()))
    data: dict[str, list[str]] = {"Row": labels}
    bold: dict[str, list[bool]] = {"Row": [False] * len(labels)}
    runs_seen = list(dict.fromkeys(cells["run"])) if not cells.empty else []
    metrics = list(dict.fromkeys(cells["metric"])) if not cells.empty else []
    ref = study.get("reference") or {}
    ref_values = paper_values(study, "ablation")
    used: set[str] = set()

    def at(label: str, frac: Any) -> str | None:
        return next(
            (r for r, (lb, f) in layout.items() if lb == label and same_value(f, frac)), None
        )

    for run_label in runs_seen:
        for metric in metrics:
            grp = cells[(cells["run"] == run_label) & (cells["metric"] == metric)]
            by_key = {str(k): r for k, r in zip(grp["key"], grp.to_dict("records"))}
            dataset = grp["dataset"].iloc[0] if len(grp) else ""
            head = " ".join(
                t for t in (run_label if len(runs_seen) > 1 else "", metric) if t
            ).strip()
            for frac in fractions:
                recs = [by_key.get(at(lb, frac) or "") for lb in labels]
                groups = {lb: list(r["values"]) if r else [] for lb, r in zip(labels, recs)}
                comp = stats.compare_column(groups, base_label) if base_label in groups else {}
                title = f"{head} {fraction_label(frac)}"
                col, sig, pcol = [], [], []
                for lb, r in zip(labels, recs):
                    c = comp.get(lb)
                    delta = None if lb == base_label or c is None else c.delta
                    col.append(value_text(r, delta) if r else "n/a")
                    sig.append(bool(c and c.significant()))
                    pcol.append(
                        fmt_p(c.p_welch_holm) + ("*" if c.significant() else "") if c else "–"
                    )
                data[title], bold[title] = col, sig
                data[f"{title} p"], bold[f"{title} p"] = pcol, [False] * len(labels)
                if dataset in ref_values and (not ref.get("metric") or ref["metric"] == metric):
                    used.add(dataset)
                    values = ref_values[dataset]
                    data[f"{title} paper"] = [_paper(values, at(lb, frac)) for lb in labels]
                    bold[f"{title} paper"] = [False] * len(labels)
    for dataset, values in ref_values.items():  # the paper's datasets this run does not use
        if dataset in used:
            continue
        for frac in fractions:
            data[f"paper {dataset} {fraction_label(frac)}"] = [
                _paper(values, at(lb, frac)) for lb in labels
            ]
            bold[f"paper {dataset} {fraction_label(frac)}"] = [False] * len(labels)
    notes = [
        f"One column per labelled fraction ({', '.join(fraction_label(f) for f in fractions)}); "
        f"mean ± std (ddof=1) over seeds; ↑/↓: difference to '{base_label}' at the same "
        f"fraction. p: Welch's t-test against it, Holm-corrected within each column; * and "
        f"bold: p < {stats.ALPHA}."
    ]
    if ref_values:
        notes.append(
            f"paper: {ref.get('source') or 'the paper'} ({ref.get('metric') or 'same metric'}), "
            "percent as printed; '–' where the paper prints no number for that setting."
        )
    if ref.get("note"):
        notes.append(f"paper note: {ref['note']}")
    return Table("fractions", "By label fraction", pd.DataFrame(data), pd.DataFrame(bold), notes)


def _paper(values: dict[Any, float], key: str | None) -> str:
    if key is None:
        return "–"
    v = next((val for k, val in values.items() if same_value(k, key)), math.nan)
    return "–" if math.isnan(v) else f"{v:.2f}"
