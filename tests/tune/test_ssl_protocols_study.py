"""``fer-study run studies/ssl_protocols.yaml`` end to end at a reduced size, then its report.

Twenty rows (five self-supervised methods x linear / semi 1 % / semi 10 % / fine-tune) on one
seed, one epoch per stage, a small SynthFER; the four rows of a method share one cached
pre-training. The report's table holds every row and the paper's Table 1 numbers beside them.
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
         "data.n_train=32", "data.n_val=32", "data.n_test=32", "data.img_size=32"]  # fmt: skip
METHODS = ["byol", "simsiam", "moco", "mocov2", "simclr"]
ROWS = [f"{m}-{p}" for m in METHODS for p in ("linear", "semi1", "semi10", "finetune")]


@pytest.mark.slow
def test_ssl_protocols_runs_and_reports_table_1(tmp_path: Path, study_session: Path):
    run_dir, trials = run_study("ssl_protocols", tmp_path, SMALL)
    assert sorted(t["row"] for t in trials) == sorted(ROWS)
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert all(0.0 <= float(t["best.test/acc"]) <= 1.0 for t in trials)
    # one pre-training per method (its four rows share it); the fine-tuning rows also cache
    # their linear stage (backbone + head)
    handoffs = [torch.load(p, weights_only=True) for p in study_session.rglob("handoff.pt")]
    assert sorted(sorted(h) for h in handoffs) == [["backbone"]] * 5 + [["backbone", "head"]] * 5
    text = report_markdown(run_dir, tmp_path)
    for row in ROWS:
        assert row in text
    assert "41.64" in text and "45.11" in text  # the paper's AN-8 numbers beside the rows
