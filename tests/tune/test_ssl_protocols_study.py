"""``fer-study run studies/ssl_protocols.yaml`` end to end at a reduced size, then its report.

Twenty rows (five self-supervised methods x linear / semi 1 % / semi 10 % / fine-tune) on one
seed, one epoch per stage, a small SynthFER; the four rows of a method share one cached
pre-training. The report's table holds every row and the paper's Table 1 numbers beside them.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "studies" / "ssl_protocols.yaml"
SMALL = ["seeds=[0]", "trainer.epochs=1", "stages.pretrain.trainer.epochs=1",
         "stages.pretrain.trainer.batch_size=32", "stages.pretrain.method.proj.hidden_dim=32",
         "data.n_train=32", "data.n_val=32", "data.n_test=32", "data.img_size=32"]  # fmt: skip
METHODS = ["byol", "simsiam", "moco", "mocov2", "simclr"]
ROWS = [f"{m}-{p}" for m in METHODS for p in ("linear", "semi1", "semi10", "finetune")]


def _cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", FER_STUDY_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "fer_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
        start_new_session=True,
    )


@pytest.mark.slow
def test_ssl_protocols_runs_and_reports_table_1(tmp_path: Path):
    run_dir = tmp_path / "ssl_protocols-synth"
    small = [a for ov in SMALL for a in ("-o", ov)]
    out = _cli("run", str(STUDY), "--run-dir", str(run_dir), "--num-cpus", "2", *small,
               cache=tmp_path / "cache")  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with (run_dir / "trials.csv").open() as fh:
        trials = list(csv.DictReader(fh))
    assert sorted(t["row"] for t in trials) == sorted(ROWS)
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert all(0.0 <= float(t["best.test/acc"]) <= 1.0 for t in trials)
    # one pre-training per method (its four rows share it); the fine-tuning rows also cache
    # their linear stage (backbone + head)
    handoffs = [torch.load(p, weights_only=True) for p in (tmp_path / "cache").rglob("handoff.pt")]
    assert sorted(sorted(h) for h in handoffs) == [["backbone"]] * 5 + [["backbone", "head"]] * 5
    rep = _cli("report", str(run_dir), "--format", "md", "--out", str(tmp_path / "report"),
               cache=tmp_path / "cache")  # fmt: skip
    assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
    text = "\n".join(p.read_text() for p in (tmp_path / "report").rglob("*.md"))
    for row in ROWS:
        assert row in text
    assert "41.64" in text and "45.11" in text  # the paper's AN-8 numbers beside the rows
