"""``fer-study run studies/mimic_components.yaml`` end to end at a reduced size, then its report.

Six rows (supervised / MIM pre-training x CE / SCL / MSCL) on one seed, one epoch, a small
SynthFER; the three MIM rows share one cached MAE stage. The report's table holds every row and
the paper's Table II numbers beside them.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "studies" / "mimic_components.yaml"
SMALL = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=32", "data.n_train=96",
         "data.n_val=48", "data.n_test=48", "data.img_size=32"]  # fmt: skip
ROWS = ["supervised+ce", "supervised+scl", "supervised+mscl", "mim+ce", "mim+scl", "mim+mscl"]


def _cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", FER_STUDY_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "fer_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
        start_new_session=True,
    )


@pytest.mark.slow
def test_mimic_components_runs_and_reports_table_ii(tmp_path: Path):
    run_dir = tmp_path / "mimic_components-synth"
    small = [a for ov in SMALL for a in ("-o", ov)]
    out = _cli("run", str(STUDY), "--run-dir", str(run_dir), "--num-cpus", "2", *small,
               cache=tmp_path / "cache")  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with (run_dir / "trials.csv").open() as fh:
        trials = list(csv.DictReader(fh))
    assert sorted(t["row"] for t in trials) == sorted(ROWS)
    assert all(t["status"] == "TERMINATED" for t in trials)
    assert all(0.0 <= float(t["best.test/acc"]) <= 1.0 for t in trials)
    # one MAE pre-training for the three MIM rows of the seed (cached hand-off)
    assert len(list((tmp_path / "cache").rglob("handoff.pt"))) == 1
    rep = _cli("report", str(run_dir), "--format", "md", "--out", str(tmp_path / "report"),
               cache=tmp_path / "cache")  # fmt: skip
    assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
    tables = list((tmp_path / "report").rglob("*.md"))
    text = "\n".join(p.read_text() for p in tables)
    for row in ROWS:
        assert row in text
    assert "89.02" in text and "87.33" in text  # the paper's RAF-DB numbers beside the rows
