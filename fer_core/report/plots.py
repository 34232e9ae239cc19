"""Sensitivity plots like 000 Fig. 6, 001 Figs. 6-7, 002 Fig. 5 and 003 Fig. 8 (PNG + SVG).

Metric (percent for fraction metrics) against the swept knob, log axis when the knob's space entry
is log-scaled (``loguniform`` or ``log: true``), mean ± std over seeds as error bars, one line per
dataset/profile, the paper's values dashed beside ours (or its stated optimum as a vertical
marker with its note), our best value annotated. Uses matplotlib's object API on the Agg canvas
(no pyplot global state), so reports can be built in worker threads.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

# Agg (files only) unless the caller already chose a backend for pyplot (e.g. a notebook).
if "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fer_core.report.collect import RunData, get_knob, run_of, same_value  # noqa: E402
from fer_core.report.design import optimum_of, sensitivity_x, space_entry  # noqa: E402
from fer_core.report.reference import draw_reference  # noqa: E402
from fer_core.report.tables import (  # noqa: E402
    best_key,
    higher_is_better,
    scale,
    seeds_text,
    ties_note,
    value_label,
)

LEGEND_PT = 9  # legend and annotation font sizes (points): readable at 100 dpi
LABEL_PT = 9


@dataclass
class Plot:
    """A rendered figure: ``png`` / ``svg`` bytes, a file stem and a caption."""

    name: str
    caption: str
    png: bytes
    svg: bytes


def render(fig: Figure, name: str, caption: str) -> Plot:
    """Render ``fig`` to PNG (100 dpi) and SVG bytes."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    png, svg = io.BytesIO(), io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "fer-study"}):  # reproducible SVG ids, no date
        fig.savefig(png, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(svg, format="svg", bbox_inches="tight", metadata={"Date": None})
    return Plot(name, caption, png.getvalue(), svg.getvalue())


def is_log_scaled(study: dict, x: str, values: Sequence[Any]) -> bool:
    """True when ``report.log_x`` is set or the space entry of ``x`` is log-scaled
    (``loguniform``, or an ``int`` range with ``log: true``).

    Without a usable space entry (e.g. an unresolved reference), positive values spanning at least
    two decades are drawn on a log axis.
    """
    if get_knob(study, "report.log_x") is True:
        return True
    entry = space_entry(study, x)
    if entry:
        return "loguniform" in entry or entry.get("log") is True
    nums = [_num(v) for v in values]
    if nums and all(n is not None and n > 0 for n in nums):
        return max(nums) / min(nums) >= 100
    return False


def _num(v: Any) -> float | None:
    if isinstance(v, (bool, dict, list)) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def sensitivity_plot(
    runs: Sequence[RunData], cells: pd.DataFrame, reference: pd.DataFrame | None = None
) -> Plot | None:
    """One subplot per metric; error-bar line per run; paper's values / optimum; best annotated;
    ``report.reference``'s run (:func:`fer_core.report.reference.reference_cells`) as a line."""
    drawn = sensitivity_figure(runs, cells, reference)
    if drawn is None:
        return None
    fig, caption = drawn
    return render(fig, "sensitivity", caption)


def sensitivity_figure(
    runs: Sequence[RunData], cells: pd.DataFrame, reference: pd.DataFrame | None = None
) -> tuple[Figure, str] | None:
    """The figure of :func:`sensitivity_plot` and its caption (None without cells)."""
    if cells.empty:
        return None
    study = runs[0].study
    x = sensitivity_x(study) or "x"
    metrics = list(dict.fromkeys(cells["metric"]))
    keys: list[Any] = []
    for k in cells["key"]:
        if not any(same_value(k, e) for e in keys):
            keys.append(k)
    numeric = all(_num(k) is not None for k in keys)
    log = numeric and is_log_scaled(study, x, keys)

    def pos(k: Any) -> float:
        if numeric:
            return float(k)
        return float(next(i for i, e in enumerate(keys) if same_value(k, e)))

    fig = Figure(figsize=(5.2 * len(metrics), 3.8), layout="constrained")
    labels: list[tuple] = []  # (ax, text, x, mean, std, errorbar container): placed last
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    ref = study.get("reference") or {}
    labels_of_runs = [r.label for r in runs]
    for ax, metric in zip(axes, metrics):
        f = scale(metric)
        colors: dict[str, str] = {}  # dataset -> colour of our line, reused for the paper's
        run_colors: dict[str, str] = {}  # run -> colour of its line, reused for its reference
        series = list(dict.fromkeys(cells["run"]))
        overall = best_key_overall(cells[cells["metric"] == metric], metric, study)
        for run_label in series:
            grp = cells[(cells["run"] == run_label) & (cells["metric"] == metric)]
            have = grp[grp["n"] > 0]
            xs = [pos(k) for k in have["key"]]
            order = sorted(range(len(xs)), key=xs.__getitem__)
            xs = [xs[i] for i in order]
            ys = [have["mean"].iloc[i] * f for i in order]
            es = [
                0.0 if math.isnan(have["std"].iloc[i]) else have["std"].iloc[i] * f for i in order
            ]
            line = ax.errorbar(
                xs,
                ys,
                yerr=es,
                marker="o",
                capsize=3,
                label=f"ours: {run_label}" if run_label else "ours",
            )
            colors.setdefault(str(grp["dataset"].iloc[0]), line[0].get_color())
            run_colors.setdefault(run_of(run_label, labels_of_runs), line[0].get_color())
            best = best_key(grp, metric, study)
            if len(series) > 3 and overall != (run_label, best):
                best = None  # many lines: annotate only the overall best
            if best is not None:
                b = have[[same_value(k, best) for k in have["key"]]].iloc[0]
                err = 0.0 if math.isnan(b["std"]) else b["std"] * f
                labels.append(
                    (ax, f"best {b['mean'] * f:.2f}", pos(best), b["mean"] * f, err, line)
                )
        if not ref.get("metric") or ref["metric"] == metric:
            _paper_lines(ax, study, x, keys, numeric, pos, colors)
        if reference is not None:
            draw_reference(ax, reference, metric, f, run_colors)
        if log:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(keys)), [value_label(study, k, "\n") for k in keys])
        elif keys and len(keys) <= 8:  # a grid: tick exactly its values
            ticks = [value_label(study, f"{float(k):g}", "\n") for k in keys]
            ax.set_xticks([float(k) for k in keys], ticks)
            ax.minorticks_off()
        ax.set_xlabel(x)
        ax.set_ylabel(metric + (" (%)" if f == 100.0 else ""))
        ax.margins(y=0.2)  # room for the "best" annotation above or below the error bars
        ax.grid(True, alpha=0.3)
    figure_legend(fig, axes)
    title = f"{study.get('name', 'study')}: {x}"
    if study.get("paper"):
        title += f" (cf. {study['paper']})"
    fig.suptitle(title, fontsize=10)
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()  # final limits and layout, so label extents are real
    for ax, text, xv, mean, err, container in labels:
        place_clear_of_bars(ax, text, xv, mean, err, container[0].get_color())
    caption = (
        f"Sensitivity of {', '.join(metrics)} to {x}: mean ± std over seeds "
        f"({seeds_text(cells)}); 'best' labels the best mean. In the table, " + ties_note(cells)
    )
    return fig, caption


def figure_legend(fig: Figure, axes: Sequence[Any]) -> None:
    """One legend for the whole figure, below the axes (constrained layout makes room), so it
    never covers a line, band or error bar: the union of the axes' entries, each label once, as
    many columns as panels (one column under a single panel)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        ncols = min(len(entries), len(axes))
        fig.set_figheight(fig.get_figheight() + 0.25 * math.ceil(len(entries) / ncols))
        fig.legend(list(entries.values()), list(entries), loc="outside lower center",
                   ncols=ncols, fontsize=LEGEND_PT)  # fmt: skip


def place_clear_of_bars(ax, text: str, x: float, mean: float, err: float, color: str):
    """Annotate ``text`` at ``x`` just above the top of its error bar, or below its bottom when
    the space above crosses any error bar or marker of the axes; centred on ``x`` unless that
    runs over the axes' left or right edge, when it is aligned to end (or start) at ``x``.
    Returns the Text artist."""
    tries = [
        ((dx, sign * 5), ha, y, va)
        for dx, ha in ((0, "center"), (3, "right"), (-3, "left"))
        for sign, y, va in ((1, mean + err, "bottom"), (-1, mean - err, "top"))
    ]

    def put(offset, ha, y, va):
        return ax.annotate(text, (x, y), textcoords="offset points", xytext=offset, ha=ha,
                           va=va, fontsize=LABEL_PT, color=color)  # fmt: skip

    fallback = None  # the first try inside the axes: used when every try crosses a bar
    for choice in tries:
        ann = put(*choice)
        if inside_axes(ax, ann):
            if not crossed_bars(ax, ann):
                return ann
            fallback = fallback or choice
        ann.remove()
    return put(*(fallback or tries[0]))


def inside_axes(ax, ann) -> bool:
    """Whether ``ann``'s box lies within the axes' box (display coordinates)."""
    renderer = ax.figure.canvas.get_renderer()
    box, frame = ann.get_window_extent(renderer), ax.get_window_extent(renderer)
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1


def crossed_bars(ax, ann) -> list:
    """The error-bar segments and data lines of ``ax`` whose display extent meets ``ann``'s box."""
    renderer = ax.figure.canvas.get_renderer()
    box = ann.get_window_extent(renderer)
    hits = []
    for coll in ax.collections:  # error bars: one segment per point
        for seg in coll.get_segments():
            pts = ax.transData.transform(seg)
            (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
            if x0 <= box.x1 and x1 >= box.x0 and y0 <= box.y1 and y1 >= box.y0:
                hits.append(seg)
    return hits


def best_key_overall(cells: pd.DataFrame, metric: str, study: dict) -> tuple[str, Any] | None:
    """``(series, key)`` of the best cell mean across all series of one metric."""
    have = cells[cells["n"] > 0]
    if have.empty:
        return None
    idx = have["mean"].idxmax() if higher_is_better(metric, study) else have["mean"].idxmin()
    return have.loc[idx, "run"], have.loc[idx, "key"]


def _paper_lines(
    ax, study: dict, x: str, keys: list[Any], numeric: bool, pos, colors: dict
) -> None:
    """The paper's curves (percent as printed, dashed, in the colour of our line on the same
    dataset; a single number per dataset as a horizontal line), and its stated optimum as a
    vertical marker with its note."""
    ref = study.get("reference") or {}
    source = f" ({ref['source']})" if ref.get("source") else ""
    for dataset, values in (ref.get("values") or {}).items():
        if _num(values) is not None:
            ax.axhline(
                float(values),
                linestyle="--",
                alpha=0.7,
                color=colors.get(str(dataset)),
                label=f"paper: {dataset}{source}",
            )
            continue
        pts = []
        for k, v in (values if isinstance(values, dict) else {}).items():
            if v is None:
                continue
            if numeric and _num(k) is not None:
                pts.append((float(k), float(v)))
            elif not numeric and any(same_value(k, e) for e in keys):
                pts.append((pos(k), float(v)))
        if pts:
            pts.sort()
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                linestyle="--",
                marker="s",
                alpha=0.7,
                color=colors.get(str(dataset)),
                label=f"paper: {dataset}{source}",
            )
    opt = optimum_of(study, x)
    if opt is not None:
        value, note = opt
        where = _num(value) if numeric else None
        if not numeric:
            where = next((i for i, e in enumerate(keys) if same_value(value, e)), None)
        if where is not None:
            ax.axvline(
                where,
                color="grey",
                linestyle=":",
                label=f"paper's optimum {value}" + (f": {note}" if note else ""),
            )
