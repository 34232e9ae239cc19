"""Every command an ``--help`` text shows runs (issue 18): at a reduced size, with ``--dry-run``
where it trains a study, in-process. Dataset names agree between ``data`` and ``train``."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from fer_core import cli

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "report"))
EXAMPLE = re.compile(r"^\s+fer-study (\S.*?)(?:\s{2,}.*)?$")
TINY_TRAIN = ["trainer.epochs=1", "data.n_train=48", "data.n_val=16", "data.n_test=16",
              "trainer.batch_size=16", "trainer.progress=false"]  # fmt: skip
TINY_DATA = ["--set", "n_train=40", "--set", "n_val=14", "--set", "n_test=14"]


def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return capsys.readouterr().out


def examples(capsys) -> list[list[str]]:
    """Every ``fer-study ...`` example line of every command's ``--help``."""
    out = []
    for argv in ([], ["train"], ["run"], ["report"], ["data"], ["validate"], ["list"]):
        for line in _help(argv, capsys).splitlines():
            m = EXAMPLE.match(line)
            if m and not line.lstrip().startswith("fer-study COMMAND"):
                out.append(shlex.split(m.group(1)))
    return out


def _fixture_runs(root: Path) -> None:
    from report_fixtures import (
        ABLATION_STUDY,
        SENS_STUDY,
        ablation_rows,
        sensitivity_rows,
        write_run,
    )

    runs = root / "runs"
    write_run(runs, {**SENS_STUDY, "name": "pll_tau"}, "synth", "synthfer", sensitivity_rows())
    write_run(runs, {**SENS_STUDY, "name": "quickstart"}, "synth", "synthfer", sensitivity_rows())
    abl = {**ABLATION_STUDY, "name": "pll_ablation"}
    write_run(runs, abl, "synth", "synthfer", ablation_rows())
    write_run(runs, abl, "paper", "rafdb", ablation_rows())


def _adapt(argv: list[str], tmp: Path, last_train: list[Path]) -> list[str]:
    """The example at a reduced size, with its paths under ``tmp``."""
    argv = [a.replace("/tmp/", f"{tmp}/").replace("/data/RAF-DB", f"{tmp}/synth-raf") for a in argv]
    cmd = argv[0]
    if cmd == "train" and any(a.startswith("trainer.resume=") for a in argv):
        return [*(a.replace("runs/<dir>", str(last_train[0])) for a in argv), *TINY_TRAIN]
    if cmd == "train" and not last_train:  # one real (tiny) training; the resume example uses it
        last_train.append(tmp / "train-0")
        return [*argv, *TINY_TRAIN, "--run-dir", str(last_train[0])]
    if cmd == "train":  # the others: composed and built, not trained (see _builds)
        return argv if "--cfg" in argv else [*argv, "--cfg", "job"]
    if cmd == "run":
        return argv if "--dry-run" in argv else [*argv, "--dry-run"]
    if argv[:2] == ["data", "export"]:
        return [*argv, *TINY_DATA]
    return argv


def test_every_help_example_runs(capsys, tmp_path, monkeypatch):
    found = examples(capsys)
    kinds = {tuple(a[:2]) if a[0] == "data" else (a[0],) for a in found}
    assert {("train",), ("run",), ("report",), ("data", "export"), ("data", "check")} <= kinds
    _fixture_runs(tmp_path)
    (tmp_path / "studies").symlink_to(REPO / "studies")
    (tmp_path / "search_spaces").symlink_to(REPO / "search_spaces")
    monkeypatch.chdir(tmp_path)
    # exports first: the check examples read what they wrote
    order = sorted(found, key=lambda a: (a[:2] != ["data", "export"], a[0] == "train"))
    trained: list[Path] = []
    for argv in order:
        run = _adapt(argv, tmp_path, trained)
        rc = cli.main(run)
        out = capsys.readouterr()
        assert rc == 0, f"fer-study {' '.join(argv)} -> {rc}\n{out.out[-2000:]}\n{out.err[-2000:]}"
        if run[0] == "train" and "--run-dir" not in run and not _resumes(run):
            _builds(run)  # the train "dry run": every stage's method on its model, no training


def _resumes(argv: list[str]) -> bool:
    return any(a.startswith("trainer.resume=") for a in argv)


def _builds(argv: list[str]) -> None:
    """Compose the example (as ``--cfg job`` does) and build every stage's method on the
    ``meta`` device, so a method that refuses its model fails here without training."""
    import torch

    from fer_core.engine.build import build_method, compose, stage_configs
    from fer_core.methods import MethodInfo

    cfg = compose([a for a in argv[1:] if not a.startswith("-") and a not in ("job", "all")])
    for _, stage in stage_configs(cfg):
        d = stage["data"]
        info = MethodInfo(d["num_classes"], d["img_size"], d["channels"], str(d["name"]))
        with torch.device("meta"):
            build_method(stage, info)


def test_dataset_names_agree_between_data_and_train(capsys):
    from fer_core.data.commands import data_options, layout_name
    from fer_core.engine.build import group_options

    assert set(data_options()) == set(group_options("data"))
    assert layout_name("affectnet7") == layout_name("affectnet8") == "affectnet"
    assert "data=affectnet7 reads the 'affectnet' layout" in capsys.readouterr().err
    assert cli.main(["data", "list"]) == 0
    assert "affectnet (train: data=affectnet7 | data=affectnet8)" in capsys.readouterr().out
