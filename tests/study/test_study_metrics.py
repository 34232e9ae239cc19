"""Metric names are checked before anything runs (issue 18): ``validate``, ``run --dry-run`` and
``run`` reject a misspelled ``metric`` with file:line, a suggestion and every valid name."""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_core import cli
from fer_core.engine.build import compose
from fer_core.study.metrics import declared_metrics

BROKEN = Path(__file__).parent / "broken"
KFOLD = Path(__file__).parents[1] / "tune" / "studies" / "kfold_tiny.yaml"


@pytest.mark.parametrize(
    "argv",
    [["validate"], ["run", "--dry-run"], ["run"]],
    ids=["validate", "dry-run", "run"],
)
def test_misspelled_metric_fails_before_anything_runs(argv, capsys, tmp_path):
    path = BROKEN / "metric_typo.yaml"
    extra = ["--run-dir", str(tmp_path / "run")] if argv == ["run"] else []
    rc = cli.main([argv[0], str(path), *argv[1:], *extra])
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc != 0
    assert "Traceback" not in text
    assert f"{path}:9: metric: 'val/acc_typo'" in text
    assert "did you mean" in text and "val/acc, val/uar, val/f1, val/acc_true" in text
    assert not (tmp_path / "run").exists()


def test_declared_names_follow_the_method_and_the_protocol():
    pll = declared_metrics(compose(["method=pll"]))
    assert "val/acc" in pll and "pll/revised" in pll and "mim/loss" not in pll
    mae = declared_metrics(compose(["recipe=mae_finetune"]))  # the last stage reports
    assert "val/uar" in mae and "mim/loss" not in mae
    kf = declared_metrics(compose(["trainer.protocol=kfold", "trainer.kfold.k=2"]))
    assert all(n in kf for n in ("test/acc_std", "fold1/val/acc", "kfold/k"))
    assert "fold2/val/acc" not in kf and "fold0/val/acc_typo" not in kf


def test_kfold_study_may_report_fold_families(tmp_path):
    text = KFOLD.read_text().replace(
        "seeds: [0]", "seeds: [0]\nreport: {kind: search, metrics: [test/acc_std, fold1/test/uar]}"
    )
    (tmp_path / "studies").mkdir()
    path = tmp_path / "studies" / "kfold_names.yaml"
    path.write_text(text)
    assert cli.main(["validate", str(path)]) == 0
