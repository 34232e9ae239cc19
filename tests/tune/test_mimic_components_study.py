"""``fer-study run studies/mimic_components.yaml`` end to end at a reduced size, then its report.

Six rows (supervised / MIM pre-training x CE / SCL / MSCL) on one seed, one epoch, a small
SynthFER; the three MIM rows share one cached MAE stage. The report's table holds every row and
the paper's Table II numbers beside them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from study_cli import (
    report_markdown,
    run_study,
    study_session_fixture,  # noqa: F401 (the module's Ray + cache)
)

SMALL = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=32", "data.n_train=96",
         "data.n_val=48", "data.n_test=48", "data.img_size=32"]  # fmt: skip
ROWS = ["supervised+ce", "supervised+scl", "supervised+mscl", "mim+ce", "mim+scl", "mim+mscl"]


@pytest.mark.slow
def test_mimic_components_runs_and_reports_table_ii(tmp_path: Path, study_session: Path):
    run_dir, trials = run_study("mimic_components", tmp_path, SMALL)
    assert sorted(t["row"] for t in trials) == sorted(ROWS)
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert all(0.0 <= float(t["best.test/acc"]) <= 1.0 for t in trials)
    # one MAE pre-training for the three MIM rows of the seed (cached hand-off)
    assert len(list(study_session.rglob("handoff.pt"))) == 1
    text = report_markdown(run_dir, tmp_path)
    for row in ROWS:
        assert row in text
    assert "89.02" in text and "87.33" in text  # the paper's RAF-DB numbers beside the rows
