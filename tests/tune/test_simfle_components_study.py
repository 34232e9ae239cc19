"""``fer-study run studies/simfle_components.yaml`` end to end at a reduced size, then its report.

Table 3's four rows (GFL only, semantic + direct, random + distil, SimFLE) on one seed, one
pre-training step and one probe epoch each, on 32 SynthFER images; every row pre-trains its own
backbone. The report's table holds every row and the paper's Table 3 numbers beside them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from study_cli import (
    report_markdown,
    run_study,
    study_session_fixture,  # noqa: F401 (the module's Ray + cache)
)

SMALL = ["seeds=[0]", "trainer.epochs=1", "stages.pretrain.trainer.epochs=1",
         "stages.pretrain.trainer.batch_size=32", "stages.pretrain.method.proj.hidden_dim=32",
         "stages.pretrain.method.pred.hidden_dim=32", "stages.pretrain.method.distil.hidden_dim=32",
         "stages.pretrain.method.decoder.depth=1", "stages.pretrain.method.decoder.dim=32",
         "stages.pretrain.method.decoder.heads=2", "data.n_train=32", "data.n_val=32",
         "data.n_test=32"]  # fmt: skip
ROWS = ["gfl-only", "semantic-direct", "random-distil", "simfle"]


@pytest.mark.slow
def test_simfle_components_runs_and_reports_table_3(tmp_path: Path, study_session: Path):
    run_dir, trials = run_study("simfle_components", tmp_path, SMALL)
    assert sorted(t["row"] for t in trials) == sorted(ROWS)
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert all(0.0 <= float(t["best.test/acc"]) <= 1.0 for t in trials)
    # one pre-training per row, each handing on its backbone only
    handoffs = [torch.load(p, weights_only=True) for p in study_session.rglob("handoff.pt")]
    assert sorted(sorted(h) for h in handoffs) == [["backbone"]] * 4
    text = report_markdown(run_dir, tmp_path)
    for row in ROWS:
        assert row in text
    assert "41.64" in text and "44.01" in text  # the paper's AffectNet-8 numbers beside the rows
