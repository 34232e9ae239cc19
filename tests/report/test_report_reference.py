"""report.reference: its own run (RUN_DIR/reference/trials.csv) as a last table row and a line
with its band on sensitivity plots; the tests and the best marking ignore it."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
from report_fixtures import ABLATION_STUDY, SENS_STUDY, ablation_rows, sensitivity_rows

from fer_core.report import assemble, load_runs
from fer_core.report.tables import fmt_num

REF_ACC = [0.90, 0.92]


def _with_reference(run_dir, label="CE, plurality labels"):
    (run_dir / "reference").mkdir()
    rows = [
        {"config_id": 0, "seed": s, "status": "TERMINATED", "best.test/acc": a, "best.val/acc": a}
        for s, a in enumerate(REF_ACC)
    ]
    pd.DataFrame(rows).to_csv(run_dir / "reference" / "trials.csv", index=False)
    return run_dir


def test_sensitivity_reference_row_and_line(tmp_path, make_run):
    study = copy.deepcopy(SENS_STUDY)
    study["report"]["reference"] = {"label": "CE, plurality labels", "set": {"method": "ce"}}
    run = _with_reference(make_run(tmp_path / "runs", study, "paper", "rafdb", sensitivity_rows()))
    report = assemble(load_runs([run]))
    table = next(t for t in report.tables if t.name == "sensitivity")
    last = table.df.iloc[-1]
    assert last["method.uniform.tau"] == "reference: CE, plurality labels"
    mean, std = np.mean(REF_ACC), np.std(REF_ACC, ddof=1)
    assert last["test/acc"] == f"{fmt_num(mean, 'acc')} ± {fmt_num(std, 'acc')}"
    assert not table.bold.iloc[-1].any()  # never "best": it is not a point of the sweep
    assert any("report.reference" in n and "n = 2 seeds" in n for n in table.notes)
    svg = report.plots[0].svg.decode()
    assert "reference: CE, plurality labels (n=2)" in svg
    assert len(report.stats) == 3  # the statistics cover the sweep only


def test_ablation_reference_row(tmp_path, make_run):
    study = copy.deepcopy(ABLATION_STUDY)
    study["report"]["reference"] = {"label": "CE", "set": {"method": "ce"}}
    run = _with_reference(make_run(tmp_path / "runs", study, "synth", "synthfer", ablation_rows()))
    table = next(t for t in assemble(load_runs([run])).tables if t.name == "ablation")
    assert table.df.iloc[-1]["Row"] == "reference: CE"
    assert table.df.iloc[-1]["test/acc"].startswith(fmt_num(np.mean(REF_ACC), "acc"))
    assert table.df.iloc[-1]["test/uar"] == "n/a (partial)"  # the reference run lacks it


def test_declared_but_not_run_says_so(tmp_path, make_run):
    study = copy.deepcopy(SENS_STUDY)
    study["report"]["reference"] = {"label": "CE", "set": {"method": "ce"}}
    run = make_run(tmp_path / "runs", study, "paper", "rafdb", sensitivity_rows())
    report = assemble(load_runs([run]))
    assert any("report.reference has not run yet" in n for n in report.notes)
