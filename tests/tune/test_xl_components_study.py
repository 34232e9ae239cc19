"""``fer-study run studies/xl_components.yaml`` end to end at a reduced size, then its report.

003 Table IV's eight rows (MSR / CLFM / CLBS on and off) on one seed, one epoch, a small
SynthFER: every module on and each one off train through the real trainer and Ray Tune; each row
reports exactly its modules' losses; the report's table holds every row and the paper's numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from study_cli import (
    report_markdown,
    run_study,
    study_session_fixture,  # noqa: F401 (the module's Ray + cache)
)

SMALL = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=16", "data.n_train=48",
         "data.n_val=16", "data.n_test=16", "data.img_size=32"]  # fmt: skip
ROWS = ["baseline", "clbs", "clfm", "clfm+clbs", "msr", "msr+clbs", "msr+clfm", "msr+clfm+clbs"]


@pytest.mark.slow
def test_xl_components_runs_and_reports_table_iv(tmp_path: Path, study_session: Path):
    run_dir, rows = run_study("xl_components", tmp_path, SMALL)
    trials = {t["row"]: t for t in rows}
    assert sorted(trials) == sorted(ROWS)
    for row, t in trials.items():
        assert t["status"] == "TERMINATED", (row, t["error"])
        assert 0.0 <= float(t["best.test/acc"]) <= 1.0
        on = set(row.split("+")) - {"baseline"}
        for module, metric in (("clfm", "train/clfm"), ("clbs", "train/clbs"), ("msr", "msr/mu1")):
            assert bool(t.get(f"final.{metric}")) == (module in on), (row, metric)
    text = report_markdown(run_dir, tmp_path)
    for row in ROWS:
        assert row in text
    assert "92.21" in text and "85.78" in text  # the paper's RAF-DB numbers beside the rows
