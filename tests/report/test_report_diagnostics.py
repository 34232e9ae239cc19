"""Identical rows are flagged and the method's diagnostic metric (pll/revised) is shown beside them."""

from __future__ import annotations

import copy

from report_fixtures import SENS_STUDY

from fer_core.report import assemble, load_runs
from fer_core.report.cells import cell_stats
from fer_core.report.diagnostics import declared_diagnostics, identical_groups
from fer_core.report.tables import fmt_num

GRID = [0.0, 0.2, 0.6, 0.9]
STUDY = copy.deepcopy(SENS_STUDY) | {
    "space": {"method.revision.threshold": {"grid": GRID}},
    "report": {"kind": "sensitivity", "x": "method.revision.threshold", "metrics": ["test/acc"]},
    "reference": None,
}


def _rows(same_above: float = 0.5) -> list[dict]:
    """0.6 and 0.9 revise nothing (pll/revised 0) and repeat one run; 0.0 and 0.2 differ."""
    rows = []
    for cid, x in enumerate(GRID):
        for seed in range(2):
            acc = 0.5 + 0.01 * seed + (0.0 if x > same_above else 0.05 + 0.1 * x)
            revised = 0.0 if x > same_above else 0.3 - x
            rows.append(
                {
                    "config_id": cid,
                    "seed": seed,
                    "status": "TERMINATED",
                    "param.method.revision.threshold": x,
                    "best.test/acc": acc,
                    "best.val/acc": acc,
                    "best.pll/revised": revised,
                }
            )
    return rows


def test_pll_declares_revised():
    assert "pll/revised" in declared_diagnostics()


def test_identical_rows_flagged_with_the_diagnostic_beside(tmp_path, make_run):
    run = make_run(tmp_path / "runs", STUDY, "synth", "synthfer", _rows())
    report = assemble(load_runs([run]))
    table = next(t for t in report.tables if t.name == "sensitivity")
    df = table.df.set_index("method.revision.threshold")
    assert df.loc["0.6", "identical to"] == "0.9" and df.loc["0.9", "identical to"] == "0.6"
    assert df.loc["0.0", "identical to"] == "" and df.loc["0.2", "identical to"] == ""
    assert df.loc["0.9", "pll/revised"] == "0 ± 0"  # nothing revised: why 0.6 and 0.9 agree
    assert df.loc["0.0", "pll/revised"] == f"{fmt_num(0.3, 'pll/revised')} ± 0"
    assert any("Identical rows: 0.6, 0.9" in n and "pll/revised" in n for n in table.notes)
    assert table.bold.shape == table.df.shape


def test_no_identical_rows_no_columns(tmp_path, make_run):
    rows = _rows(same_above=1.0)
    run = make_run(tmp_path / "runs", STUDY, "synth", "synthfer", rows)
    report = assemble(load_runs([run]))
    table = next(t for t in report.tables if t.name == "sensitivity")
    assert identical_groups(cell_stats(report.runs, "sensitivity")) == []
    assert "identical to" not in table.df.columns and "pll/revised" not in table.df.columns


def test_the_identical_rows_note_names_a_run_only_when_it_has_a_name(tmp_path, make_run):
    import dataclasses

    run = make_run(tmp_path / "runs", STUDY, "synth", "synthfer", _rows())
    (data,) = load_runs([run])

    def note(runs) -> str:
        table = next(t for t in assemble(runs).tables if t.name == "sensitivity")
        return next(n for n in table.notes if n.startswith("Identical rows"))

    assert note([data]).startswith(f"Identical rows: 0.6, 0.9 ({data.label}) agree")
    unnamed = dataclasses.replace(data, label="")  # a curated report's one run has no label
    assert note([unnamed]).startswith("Identical rows: 0.6, 0.9 agree in every metric")
