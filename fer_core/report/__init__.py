"""Reports: paper-style sensitivity plots, ablation tables, search summaries (issue 9).

Reports read only result files (``trials.csv``, ``study.yaml``, ``manifest.json``, the Optuna
storage; INTERFACES.md "Run directory"), never the trainer::

    from fer_core.report import build_report
    build_report(["runs/pll_tau-synth"], formats=["md", "html"])   # -> runs/pll_tau-synth/report
    build_report("studies/pll_tau.yaml")                           # every profile's run directory

Modules: ``collect`` (files -> pandas), ``design`` (what a study expects: grid, rows, baseline,
the paper's numbers), ``stats`` (ddof=1 std, Welch, Mann-Whitney U, Holm), ``cells`` (per-cell
statistics), ``tables`` (ablation / sensitivity tables), ``plots`` (sensitivity figures),
``search`` (best trials, fANOVA importances, Optuna plots), ``render`` (Markdown / LaTeX / HTML
tables), ``assemble`` (the :class:`Report`), ``html`` (self-contained index.html), ``export``
(atomic writing), ``commands`` (``fer-study report``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from fer_core.report.assemble import Report, assemble
from fer_core.report.collect import RunData, load_run, load_runs, resolve_sources
from fer_core.report.export import FORMATS, parse_formats, write_report_atomic

__all__ = [
    "FORMATS",
    "Report",
    "RunData",
    "assemble",
    "build_report",
    "default_out_dir",
    "load_run",
    "load_runs",
    "resolve_sources",
]


def default_out_dir(report: Report) -> Path:
    """Next to the run: ``<run_dir>/report/``; several runs combine into
    ``<first run's parent>/<a+b>-report/``. (The top-level ``reports/`` is the curated,
    committed folder of measured reports, written only on purpose with ``--out``.)"""
    if len(report.runs) == 1:
        return report.runs[0].run_dir / "report"
    return report.runs[0].run_dir.parent / f"{report.name}-report"


def build_report(
    sources: str | Path | Sequence[str | Path],
    formats: str | Iterable[str] = FORMATS,
    out_dir: str | Path | None = None,
    *,
    source: str = "best",
    runs_root: str | Path | None = None,
) -> Path:
    """Write the report of ``sources`` (run directories, or one study file) and return its dir.

    ``formats``: subset of md, tex, csv, html (plots are always written as PNG and SVG);
    ``out_dir``: default :func:`default_out_dir` (``<run_dir>/report/``); ``source``: ``best`` or ``final`` metric columns;
    ``runs_root``: where a study file's ``runs/<name>-<profile>`` directories live.
    """
    fmts = parse_formats(formats)
    report = assemble(load_runs(sources, runs_root), source=source)
    return write_report_atomic(report, out_dir or default_out_dir(report), fmts)
