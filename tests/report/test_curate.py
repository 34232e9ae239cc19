"""``make reports``' curation: a run's record + its report (md, csv, png) in reports/<study>/."""

from __future__ import annotations

import json
import os

from report_fixtures import SENS_STUDY, sensitivity_rows

from fer_core.report import assemble, load_run
from fer_core.report.curate import curate, machine, main, write_index
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
    md = (out / "report.md").read_text()
    assert "()" not in md and "(: " not in md  # its one run has no label: no empty parentheses
    assert f"## Study file ({out}/study.yaml)" in md
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


def test_a_run_that_did_not_start_leaves_the_curated_report_alone(tmp_path, make_run, monkeypatch):
    """A refused resume (the study changed since its run directory was made) exits non-zero
    before running anything: the run directory's results are an earlier run's, so they are not
    curated as this commit's. A run that started and then failed is curated (its finished
    trials are kept)."""
    import fer_core.report.curate as curate_mod

    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "sens_demo.yaml").write_text("name: sens_demo\n")
    old = {"runs": [{"at": "2026-01-01T00:00:00+00:00", "command": ["fer-study", "run"]}]}
    run = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows(), old)
    monkeypatch.setattr(curate_mod, "run_study", lambda *a: (1, 0.5))
    rc = main(["--study", "sens_demo", "--studies", "studies", "--runs-root", "runs"])
    assert rc == 1 and not (tmp_path / "reports" / "sens_demo").exists()

    def started_then_failed(*a):
        now = curate_mod.dt.datetime.now(curate_mod.dt.UTC).isoformat(timespec="seconds")
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["runs"].append({"at": now, "command": ["fer-study", "run", "--resume"]})
        (run / "manifest.json").write_text(json.dumps(manifest))
        return 1, 0.5

    monkeypatch.setattr(curate_mod, "run_study", started_then_failed)
    rc = main(["--study", "sens_demo", "--studies", "studies", "--runs-root", "runs"])
    assert rc == 1 and (tmp_path / "reports" / "sens_demo" / "report.md").is_file()


def test_machine_line_names_the_cpu_and_torch_s_simd_level():
    import torch

    line = machine()
    assert f", {torch.backends.cpu.get_cpu_capability()})" in line
    assert line.startswith(f"{os.cpu_count()} CPUs (")
    assert f"torch {torch.__version__.split('+')[0]}" in line  # the wheel's version, no local tag
