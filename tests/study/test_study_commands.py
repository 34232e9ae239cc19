"""fer-study validate / list (in-process: the command functions take argv)."""

from __future__ import annotations

from pathlib import Path

from fer_core.study.commands import list_main, validate_main

REPO = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).parent / "broken"


def test_validate_ok(capsys):
    assert validate_main([str(REPO / "studies" / "quickstart.yaml")]) == 0
    assert "ok: 1 file(s) valid" in capsys.readouterr().out


def test_validate_reports_every_error_and_exits_1(capsys):
    files = [str(BROKEN / "many_errors.yaml"), str(BROKEN / "negative_resources.yaml")]
    assert validate_main(files) == 1
    out = capsys.readouterr().out
    assert out.count("many_errors.yaml:") == 4
    assert "negative_resources.yaml:14: resources.cpu:" in out
    assert "5 problem(s) in 2 of 2 file(s)" in out


def test_validate_defaults_to_the_folders(tmp_path: Path, monkeypatch, capsys):
    # Every shipped file is validated one by one in test_study_files.py; here only the default
    # (studies/*.yaml and search_spaces/*.yaml of the working directory) is checked, on copies.
    for folder, name in (("studies", "quickstart.yaml"), ("search_spaces", "pll.yaml")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / name).write_text((REPO / folder / name).read_text())
    monkeypatch.chdir(tmp_path)
    assert validate_main([]) == 0
    assert "ok: 2 file(s) valid" in capsys.readouterr().out
    (tmp_path / "studies" / "broken.yaml").write_text("name: broken\nprofiles: {}\n")
    assert validate_main([]) == 1


def test_list(tmp_path: Path, monkeypatch, capsys):
    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "quickstart.yaml").write_text((REPO / "studies" / "quickstart.yaml").read_text())
    (studies / "broken.yaml").write_text("name: broken\nprofiles: {}\n")
    monkeypatch.chdir(tmp_path)
    assert list_main([]) == 1  # one study is invalid
    out = capsys.readouterr().out
    assert "quickstart" in out and "001 Table V" in out
    assert "synth: 4x2=8, paper: 4x2=8" in out
    assert "INVALID" in out
    (studies / "broken.yaml").unlink()
    assert list_main([]) == 0
    assert list_main(["--dir", str(tmp_path / "nope")]) == 1
