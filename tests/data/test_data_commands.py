"""``fer-study data export / check / list``."""

from __future__ import annotations

import json

import pytest

from fer_core.cli import main as cli_main
from fer_core.data.commands import main


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["data", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "export" in out and "check" in out
    for sub in ("export", "check"):
        with pytest.raises(SystemExit):
            main([sub, "--help"])
        assert "--" in capsys.readouterr().out


def test_export_then_check(tmp_path, capsys):
    out = tmp_path / "raf"
    assert main(["export", "synthfer", "--layout", "rafdb", "--out", str(out), "--set", "n_train=30",
                 "--set", "n_val=0", "--set", "n_test=10", "--set", "img_size=24"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["splits"]["train"]["written"] == 30
    assert main(["check", "rafdb", "--root", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["splits"]["train"]["n"] == 30 and res["splits"]["test"]["n"] == 10
    assert sum(res["splits"]["test"]["per_class"].values()) == 10
    # break two files: check lists them and fails
    files = sorted((out / "Image" / "aligned").iterdir())
    files[0].unlink()
    files[1].write_bytes(b"garbage")
    assert main(["check", "rafdb", "--root", str(out)]) == 1
    text = capsys.readouterr().out
    assert (
        "missing: 1" in text
        and files[0].name in text
        and "unreadable: 1" in text
        and files[1].name in text
    )


def test_check_errors(tmp_path, capsys):
    assert main(["check", "rafdb", "--root", str(tmp_path / "nope")]) == 2
    assert "expected layout" in capsys.readouterr().err
    assert main(["check", "imagenet", "--root", str(tmp_path)]) == 2
    assert (
        main(["export", "synthfer", "--layout", "sfew", "--out", str(tmp_path), "--set", "bogus"])
        == 2
    )


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "synthfer (train: data=synthfer): n_train=" in out
    assert "rafdb (train: data=rafdb): root=None" in out
