"""build_report / `fer-study report`: formats, default paths, study-file sources, atomic writes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from report_fixtures import (
    ABLATION_STUDY,
    SEARCH_STUDY,
    SENS_STUDY,
    ablation_rows,
    sensitivity_rows,
)

from fer_core.report import build_report, export
from fer_core.report.commands import main


def test_all_formats_written(tmp_path, make_run):
    run = make_run(tmp_path / "runs", SENS_STUDY, "synth", "synthfer", sensitivity_rows())
    (run / "trials").mkdir()  # the trials' logs, as a run has them
    out = build_report([run], out_dir=tmp_path / "rep")
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    for f in (
        "index.html",
        "report.md",
        "plots/sensitivity.png",
        "plots/sensitivity.svg",
        "tables/sensitivity.tex",
        "tables/sensitivity.csv",
        "tables/stats.csv",
        "tables/runs.csv",
        "tables/provenance.tex",
    ):
        assert f in files, f
    md = (out / "report.md").read_text()
    assert "![" in md and "plots/sensitivity.png" in md
    assert "tensorboard --logdir" in md and "fer-study dashboard" in md
    (run / "trials").rmdir()  # a record without logs (reports/<study>/): no live commands
    only_md = build_report([run], formats="md", out_dir=tmp_path / "rep2")
    assert not (only_md / "index.html").exists() and not (only_md / "tables").exists()
    md = (only_md / "report.md").read_text()
    assert "keeps the run's record, not its logs" in md and "fer-study dashboard" not in md


def test_cli_default_out_and_study_file(tmp_path, make_run, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    study = {
        **ABLATION_STUDY,
        "profiles": {"synth": {"data": "synthfer"}, "paper": {"data": "rafdb"}},
    }
    make_run(tmp_path / "runs", study, "synth", "synthfer", ablation_rows())
    make_run(tmp_path / "runs", study, "paper", "rafdb", ablation_rows())
    (tmp_path / "studies").mkdir()
    study_file = tmp_path / "studies" / "abl_demo.yaml"
    study_file.write_text(yaml.safe_dump(study))
    assert main([str(study_file), "--format", "md,csv"]) == 0
    assert "report written to" in capsys.readouterr().out
    written = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.name.endswith("-report"))
    assert len(written) == 1, written
    out = tmp_path / "runs" / written[0]
    assert not (tmp_path / "reports").exists()  # the curated reports/ is written only with --out
    md = (out / "report.md").read_text()
    assert "synthfer test/acc" in md and "rafdb test/acc" in md  # both profiles combined
    from fer_core.cli import main as cli_main

    assert cli_main(["report", "runs/abl_demo-paper", "--format", "tex", "--out", "one"]) == 0
    assert (tmp_path / "one" / "tables" / "ablation.tex").is_file()
    assert main(["runs/abl_demo-synth", "--format", "md"]) == 0  # one run: RUN_DIR/report/
    assert (tmp_path / "runs" / "abl_demo-synth" / "report" / "report.md").is_file()
    assert main(["runs/abl_demo-synth", "--format", "pdf"]) == 2
    assert "--format pdf is not allowed" in capsys.readouterr().err
    assert main(["runs/nothing-here"]) == 2


def test_interrupted_report_keeps_previous(tmp_path, make_run, monkeypatch):
    run = make_run(tmp_path / "runs", ABLATION_STUDY, "synth", "synthfer", ablation_rows())
    out = build_report([run], formats="md", out_dir=tmp_path / "rep")
    before = (out / "report.md").read_text()

    def boom(report, root, formats, svg=True):
        (root / "report.md").write_text("half-written")
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_files", boom)
    with pytest.raises(KeyboardInterrupt):
        build_report([run], formats="md", out_dir=out)
    assert (out / "report.md").read_text() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rep")] == []


def test_crash_between_renames_is_recovered(tmp_path, make_run):
    run = make_run(tmp_path / "runs", ABLATION_STUDY, "synth", "synthfer", ablation_rows())
    out = build_report([run], formats="md", out_dir=tmp_path / "rep")
    aside = tmp_path / ".rep.old-x1"
    out.rename(aside)  # as if killed after moving the old report aside
    export._restore_interrupted(out)
    assert (out / "report.md").is_file() and not aside.exists()


def test_report_does_not_import_trainer_or_ray():
    code = (
        "import sys, fer_core.report, fer_core.report.commands, fer_core.report.html;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('ray','torch') or "
        "m.startswith(('fer_core.engine','fer_core.tune','fer_core.methods'))];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "study", [ABLATION_STUDY, SENS_STUDY, SEARCH_STUDY], ids=lambda s: s["name"]
)
def test_just_started_study(tmp_path, make_run, study):
    """Only study.yaml exists: the report is written and every expected cell says pending."""
    run = make_run(tmp_path / "runs", study, "synth", "synthfer", [])
    (run / "trials.csv").unlink()
    out = build_report([run], out_dir=tmp_path / "rep")
    md = (out / "report.md").read_text()
    assert "trials.csv missing" in md
    if study is not SEARCH_STUDY:
        assert md.count("n/a (pending)") >= 3
