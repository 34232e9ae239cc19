"""What a finished study contains, read from its resolved ``study.yaml`` (a plain dict): the
swept knob of a sensitivity study and its grid, the named rows of an ablation (``ablation.rows``
or ``ablation.factors`` expanded as ``fer_core/study/schema.py`` does), its baseline row, so that
reports can mark the missing configurations instead of dropping them.

The dict may come from a pydantic ``model_dump`` (unset fields present as ``None``), so every
lookup here treats ``None`` as absent.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from fer_core.report.collect import get_knob

RANGE_KINDS = ("uniform", "loguniform", "int")


def space_entry(study: dict, path: str | None) -> dict | None:
    """The space entry of ``path`` with ``None`` fields dropped, or None."""
    space = study.get("space")
    entry = space.get(path) if isinstance(space, dict) and path else None
    if not isinstance(entry, dict):
        return None
    return {k: v for k, v in entry.items() if v is not None}


def sensitivity_x(study: dict) -> str | None:
    """The swept knob: ``report.x``, else the first knob of ``space``."""
    x = get_knob(study, "report.x")
    space = study.get("space")
    if not x and isinstance(space, dict) and space:
        x = next(iter(space))
    return str(x) if x else None


def grid_values(entry: dict | None) -> list[Any]:
    """Every value of a space entry (grid/choice, int ranges, ranges with a step ``q``), or []
    for a continuum (mirrors ``Distribution.grid_values`` of the study schema)."""
    if not entry:
        return []
    for form in ("grid", "choice"):
        if isinstance(entry.get(form), list):
            return list(entry[form])
    kind = next((k for k in RANGE_KINDS if isinstance(entry.get(k), list)), None)
    if kind is None:
        return []
    lo, hi = entry[kind]
    q = entry.get("q")
    if kind == "int":
        return list(range(int(lo), int(hi) + 1, int(q or 1)))
    if q:
        n = int(math.floor((hi - lo) / q + 1e-9)) + 1
        return [round(lo + i * q, 12) for i in range(n)]
    return []


def expected_keys(study: dict, kind: str) -> list[Any]:
    """The configurations a finished study has: ablation row names, or the grid of the swept knob
    (empty when the knob is sampled from a continuum)."""
    if kind == "ablation":
        return [name for name, _ in ablation_rows(study)]
    return grid_values(space_entry(study, sensitivity_x(study)))


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def ablation_rows(study: dict) -> list[tuple[str, dict]]:
    """``[(row name, {knob path: value})]`` in study order, ``report.rows`` picking and ordering
    the rows to show when given.

    ``ablation.rows`` as written; ``ablation.factors`` (``{name: path}`` or ``{name: {path,
    values}}``, values default ``[true, false]``, the first being the baseline's) expand as the
    study schema does (``fer_core/study/ablation.py``): ``one_factor`` gives ``baseline`` then
    ``no_<factor>`` (a true/false factor switched off) or ``<factor>=<value>`` for every other
    value; ``factorial`` gives every combination, named ``<f1>=<v1>,<f2>=<v2>``.
    """
    rows = _all_rows(study)
    pick = get_knob(study, "report.rows")
    if pick:
        by_name = dict(rows)
        rows = [(str(n), by_name.get(str(n), {})) for n in pick]
    return rows


def _all_rows(study: dict) -> list[tuple[str, dict]]:
    abl = study.get("ablation") or {}
    if not abl and isinstance(study.get("ablation_rows"), dict):  # the runner's StudySpec form
        return [(str(k), dict(v or {})) for k, v in study["ablation_rows"].items()]
    if abl.get("rows"):
        return [(str(r["name"]), dict(r.get("set") or {})) for r in abl["rows"]]
    factors = {
        name: {"path": f, "values": [True, False]}
        if isinstance(f, str)
        else {"path": f["path"], "values": list(f.get("values") or [True, False])}
        for name, f in (abl.get("factors") or {}).items()
    }
    if not factors:
        return []
    if abl.get("design") == "factorial":
        names = list(factors)
        return [
            (
                ",".join(f"{n}={_fmt(v)}" for n, v in zip(names, combo)),
                {factors[n]["path"]: v for n, v in zip(names, combo)},
            )
            for combo in itertools.product(*(factors[n]["values"] for n in names))
        ]
    base = {f["path"]: f["values"][0] for f in factors.values()}
    rows = [("baseline", dict(base))]
    for name, f in factors.items():
        for v in f["values"][1:]:
            switched_off = v is False and f["values"][0] is True
            label = f"no_{name}" if switched_off else f"{name}={_fmt(v)}"
            rows.append((label, {**base, f["path"]: v}))
    return rows


def baseline_row(study: dict) -> str:
    """``ablation.baseline``, else the first row (the schema's default)."""
    rows = [n for n, _ in _all_rows(study)]
    return str(get_knob(study, "ablation.baseline") or (rows[0] if rows else ""))


def optimum_of(study: dict, x: str | None = None) -> tuple[Any, str | None] | None:
    """The paper's stated optimum ``(value, note)``; a dict value (several knobs) gives the
    entry of ``x`` when asked for one knob."""
    opt = get_knob(study, "reference.optimum")
    if not isinstance(opt, dict) or opt.get("value") is None:
        return None
    value = opt["value"]
    if x is not None and isinstance(value, dict):
        value = get_knob(value, x)
        if value is None:
            return None
    return value, opt.get("note")


def paper_values(study: dict, kind: str) -> dict[str, dict[Any, float]]:
    """``reference.values`` as ``{dataset: {key: percent}}`` with ``None`` entries dropped.

    A single number for a dataset (no per-key table) belongs to the baseline row of an ablation
    or to the stated optimum of a sensitivity study; without either it is left out here (plots
    still draw it as a horizontal line).
    """
    ref = study.get("reference") or {}
    if kind == "ablation":
        anchor = baseline_row(study) or None
    else:
        opt = optimum_of(study, sensitivity_x(study))
        anchor = opt[0] if opt else None
    out: dict[str, dict[Any, float]] = {}
    for dataset, values in (ref.get("values") or {}).items():
        if isinstance(values, dict):
            out[str(dataset)] = {k: float(v) for k, v in values.items() if v is not None}
        elif values is not None and anchor is not None:
            out[str(dataset)] = {anchor: float(values)}
    return out
