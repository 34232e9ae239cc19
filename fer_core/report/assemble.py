"""Assemble a :class:`Report` (tables, plots, notes, provenance) from loaded run directories,
and render it as one Markdown document.

The report kind comes from ``report.kind`` (sensitivity | ablation | search, see
:func:`fer_core.report.collect.report_kind`); every report also carries a runs table (how many
trials of each run finished, so a partial study says so) and the runs' provenance
(``manifest.json``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fer_core.report.cells import cell_stats, numeric_stats
from fer_core.report.collect import (
    DONE,
    STATUSES,
    RunData,
    get_knob,
    report_kind,
    report_metrics,
    study_seeds,
    titled,
    val_fraction_zero,
)
from fer_core.report.design import expected_keys, sensitivity_x
from fer_core.report.diagnostics import add_diagnostics
from fer_core.report.fractions import fraction_factor, fraction_table
from fer_core.report.plots import Plot, sensitivity_plot
from fer_core.report.reference import add_reference_row, reference_cells
from fer_core.report.render import to_markdown
from fer_core.report.search import search_sections
from fer_core.report.tables import Table, ablation_table, sensitivity_table

# What the report's words mean; shown at the top of every report (Markdown and HTML).
GLOSSARY: tuple[tuple[str, str], ...] = (
    (
        "acc",
        "accuracy against the dataset's label; on SynthFER the plurality of its 10 annotators' "
        "votes (as FERPlus's majority label), so it rewards agreeing with the crowd's mistakes",
    ),
    (
        "acc_true",
        "accuracy against SynthFER's generating class (the expression the face was drawn with); "
        "only SynthFER knows it",
    ),
    ("uar", "unweighted average recall: the mean of per-class recalls, blind to class sizes"),
    ("f1", "macro F1: the mean of per-class F1 scores"),
    (
        "val/ and test/",
        "checkpoints and searches select on val/ metrics; tables and plots report test/",
    ),
    (
        "synth",
        "the CPU-sized profile on SynthFER, the embedded procedurally generated dataset: its "
        "numbers compare settings with each other, not with the paper's absolute numbers",
    ),
    ("paper", "the profile with the paper's dataset, model and hyper-parameters"),
    ("n", "finished seeds behind a cell; mean ± std uses ddof = 1"),
)


@dataclass
class Report:
    """Everything one report shows; ``stats`` holds the numeric cell statistics (fractions)."""

    name: str
    kind: str
    runs: list[RunData]
    tables: list[Table]
    plots: list[Plot]
    stats: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    @property
    def study(self) -> dict:
        return self.runs[0].study

    @property
    def title(self) -> str:
        """``report.title`` of the study, else ``<study>: <kind> report``."""
        return str(get_knob(self.study, "report.title") or f"{self.name}: {self.kind} report")


def assemble(runs: Sequence[RunData], source: str = "best") -> Report:
    """Build the report of ``runs`` (same study kind; several profiles/datasets combine).

    ``source`` picks ``best.<metric>`` (at the best-validation epoch, default) or
    ``final.<metric>`` (last epoch) columns of trials.csv.
    """
    if source not in ("best", "final"):
        raise ValueError(f"source = {source!r} is not allowed; use 'best' or 'final'")
    runs = list(runs)
    study = runs[0].study
    kind = report_kind(study)
    names = list(dict.fromkeys(r.name for r in runs))
    tables: list[Table] = [runs_table(runs, kind)]
    plots: list[Plot] = []
    cells = pd.DataFrame()
    if kind in ("ablation", "sensitivity"):
        cells = cell_stats(runs, kind, report_metrics(study), source)
        ref_cells = reference_cells(runs, report_metrics(study), source)
        if kind == "ablation" and fraction_factor(study) is not None:
            tables.append(fraction_table(runs, cells))  # one column per label fraction
        elif kind == "ablation":
            table = add_diagnostics(ablation_table(runs, cells), runs, cells, kind, source)
            tables.append(add_reference_row(table, cells, ref_cells))
        else:
            table = add_diagnostics(sensitivity_table(runs, cells), runs, cells, kind, source)
            tables.append(add_reference_row(table, cells, ref_cells))
            plot = sensitivity_plot(runs, cells, ref_cells)
            if plot is not None:
                plots.append(plot)
    else:
        more_tables, plots = search_sections(runs, source)
        tables.extend(more_tables)
    tables.append(provenance_table(runs))
    notes = _notes(runs, cells)
    return Report("+".join(names), kind, runs, tables, plots, numeric_stats(cells), notes)


def _notes(runs: Sequence[RunData], cells: pd.DataFrame) -> list[str]:
    notes = []
    for r in runs:
        notes.extend(f"{r.run_dir.name}: {n}" for n in r.notes)
        x = sensitivity_x(r.study)
        if report_kind(r.study) == "sensitivity" and x and not r.trials.empty:
            if f"param.{x}" not in r.trials.columns:
                notes.append(f"{r.run_dir.name}: trials.csv has no column param.{x}")
        if val_fraction_zero(r.study):
            notes.append(
                f"{r.run_dir.name}: data.val_fraction = 0: checkpoints were selected on the test "
                "set (the papers' practice), so test numbers are optimistic."
            )
    if not cells.empty and (cells["state"] != "complete").any():
        missing = cells[cells["state"] != "complete"]
        notes.append(
            f"Partial study: {len(missing)} of {len(cells)} cells are not complete "
            "(marked n/a (pending|running|error|pruned) or (n/N seeds))."
        )
    return notes


def runs_table(runs: Sequence[RunData], kind: str) -> Table:
    """One row per run directory: profile, dataset, trial counts per status, expected trials."""
    rows = []
    for r in runs:
        counts = r.trials["status"].value_counts()
        n_keys = len(expected_keys(r.study, kind)) if kind != "search" else 0
        n_seeds = len(study_seeds(r.study))
        n_cfg = n_keys or (int(r.study.get("num_samples") or 0) if kind == "search" else 0)
        rec: dict[str, Any] = {
            "run": r.label,
            "directory": str(r.run_dir),
            "profile": r.profile,
            "dataset": r.dataset,
            "expected trials": str(n_cfg * n_seeds) if n_cfg else "?",
        }
        for s in STATUSES:
            rec[s.lower()] = str(int(counts.get(s, 0)))
        done, expected = int(counts.get(DONE, 0)), n_cfg * n_seeds
        rec["state"] = "complete" if expected and done >= expected else "partial"
        rows.append(rec)
    df = pd.DataFrame(rows)
    return Table("runs", "Runs", df, pd.DataFrame(False, index=df.index, columns=df.columns))


def _flatten(d: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(d, list) and not all(isinstance(x, (str, int, float)) for x in d):
        out[prefix[:-1]] = json.dumps(d)
    else:
        out[prefix[:-1]] = " ".join(map(str, d)) if isinstance(d, list) else str(d)
    return out


def provenance_table(runs: Sequence[RunData]) -> Table:
    """``manifest.json`` of every run, flattened to ``key`` rows with one column per run."""
    flat = {r.label: _flatten(r.manifest) if r.manifest else {} for r in runs}
    keys = list(dict.fromkeys(k for f in flat.values() for k in f))
    data = {"key": keys} | {label: [f.get(k, "–") for k in keys] for label, f in flat.items()}
    if not keys:
        data = {"key": ["manifest.json"]} | {label: ["missing"] for label in flat}
    df = pd.DataFrame(data)
    return Table(
        "provenance", "Provenance", df, pd.DataFrame(False, index=df.index, columns=df.columns)
    )


def commands(run: RunData) -> list[str]:
    """How to look at a run live: TensorBoard over its trials and optuna-dashboard on its storage.
    A record without the trials' logs (``reports/<study>/``: trials.csv, study.yaml, manifest.json)
    says where they stayed instead of giving commands that would find nothing."""
    from fer_core.tune.dashboard import tensorboard_command

    if not (Path(run.run_dir) / "trials").is_dir():
        where = run.manifest.get("storage") or "its run directory"
        return [
            f"# {run.run_dir} keeps the run's record, not its logs: TensorBoard's event files and",
            f"# the Optuna storage stayed with the run ({where}); rerun it to watch it live",
        ]
    return [
        tensorboard_command(run.run_dir),
        f"fer-study dashboard {run.run_dir}",
    ]


def base_config_text(run: RunData) -> str:
    """The resolved base config: the study's ``base`` (profile applied), plus one trial's
    resolved trainer config when a trial has written ``config.yaml``."""
    text = yaml.safe_dump(run.study.get("base") or {}, sort_keys=False, allow_unicode=True)
    trial_cfg = run.first_trial_config()
    if trial_cfg:
        text += "\n# one trial's resolved trainer config (trials/*/config.yaml):\n" + trial_cfg
    return text


def to_markdown_report(report: Report, plot_dir: str = "plots") -> str:
    """The whole report as one Markdown document (plots linked as ``plots/<name>.png``)."""
    s = report.study
    out = [f"# {report.title}", ""]
    if s.get("description"):
        out += [str(s["description"]).strip(), ""]
    meta = [
        f"- paper: {s['paper']}" if s.get("paper") else None,
        f"- metric: {s.get('metric', '?')} ({s.get('mode', 'max')}); shown: "
        + ", ".join(report_metrics(s)),
    ]
    out += [m for m in meta if m] + [""]
    out += ["**Glossary**", ""] + [f"- `{term}`: {text}" for term, text in GLOSSARY] + [""]
    if report.notes:
        out += ["**Notes**", ""] + [f"- {n}" for n in report.notes] + [""]
    *main, provenance = report.tables
    for table in main:
        out += [f"## {table.title}", "", to_markdown(table)]
    for plot in report.plots:
        out += [f"## {plot.caption}", "", f"![{plot.caption}]({plot_dir}/{plot.name}.png)", ""]
    out += [f"## {provenance.title}", "", to_markdown(provenance)]
    out += ["## Live views", ""]
    for run in report.runs:
        out += ["```sh", *commands(run), "```", ""]
    for run in report.runs:
        study_text = run.study_text or yaml.safe_dump(run.study, sort_keys=False)
        out += [f"## {titled('Study file', run.label, f'{run.run_dir}/study.yaml')}", "", "```yaml"]
        out += [study_text.rstrip(), "```", ""]
        out += [f"## {titled('Resolved base config', run.label)}", "", "```yaml"]
        out += [base_config_text(run).rstrip(), "```", ""]
    return "\n".join(out)
