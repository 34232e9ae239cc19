"""``make reports``' curation: a run's record + its report (md, csv, png) in reports/<study>/."""

from __future__ import annotations

import json

from report_fixtures import SENS_STUDY, sensitivity_rows

from fer_core.report import assemble, load_run
from fer_core.report.curate import curate, main, write_index
from fer_core.report.render import to_csv


def test_curated_folder_holds_record_report_and_provenance(tmp_path, make_run, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows())
    measured = {"study": "sens_demo", "commit": "abc", "date": "2026-12-02 12:00", "machine": "m"}
    out = curate(run, tmp_path / "reports" / "sens_demo", measured | {"run_wall_s": 12.5})
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"trials.csv", "study.yaml", "manifest.json", "report.md", "MEASURED.json"} <= names
    assert "plots/sensitivity.png" in names and "tables/sensitivity.csv" in names
    assert not [n for n in names if n.endswith((".html", ".svg", ".tex"))]  # small diffs only
    m = json.loads((out / "MEASURED.json").read_text())
    assert m["trials_done"] == m["trials"] == 6 and m["commit"] == "abc"
    # every committed table rebuilds from the copied record
    rebuilt = assemble([load_run(out)])
    for table in rebuilt.tables:
        assert (out / "tables" / f"{table.name}.csv").read_text() == to_csv(table), table.name
    index = write_index(tmp_path / "reports").read_text()
    assert "[sens_demo](sens_demo/report.md)" in index and "| 6 / 6 |" in index


def test_unknown_study_is_named(tmp_path, capsys):
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "pll_tau.yaml").write_text("name: pll_tau\n")
    rc = main(["--study", "pll_tua", "--studies", str(tmp_path / "studies")])
    assert rc == 2
    assert "STUDY=pll_tua is not in" in capsys.readouterr().out
