"""``fer-study run studies/xl_components.yaml`` end to end at a reduced size, then its report.

003 Table IV's eight rows (MSR / CLFM / CLBS on and off) on one seed, one epoch, a small
SynthFER: every module on and each one off train through the real trainer and Ray Tune; each row
reports exactly its modules' losses; the report's table holds every row and the paper's numbers.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "studies" / "xl_components.yaml"
SMALL = ["seeds=[0]", "trainer.epochs=1", "trainer.batch_size=16", "data.n_train=48",
         "data.n_val=16", "data.n_test=16", "data.img_size=32"]  # fmt: skip
ROWS = ["baseline", "clbs", "clfm", "clfm+clbs", "msr", "msr+clbs", "msr+clfm", "msr+clfm+clbs"]


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
def test_xl_components_runs_and_reports_table_iv(tmp_path: Path):
    run_dir = tmp_path / "xl_components-synth"
    small = [a for ov in SMALL for a in ("-o", ov)]
    out = _cli("run", str(STUDY), "--run-dir", str(run_dir), "--num-cpus", "2", *small,
               cache=tmp_path / "cache")  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with (run_dir / "trials.csv").open() as fh:
        trials = {t["row"]: t for t in csv.DictReader(fh)}
    assert sorted(trials) == sorted(ROWS)
    for row, t in trials.items():
        assert t["status"] == "TERMINATED", (row, t["error"])
        assert 0.0 <= float(t["best.test/acc"]) <= 1.0
        on = set(row.split("+")) - {"baseline"}
        for module, metric in (("clfm", "train/clfm"), ("clbs", "train/clbs"), ("msr", "msr/mu1")):
            assert bool(t.get(f"final.{metric}")) == (module in on), (row, metric)
    rep = _cli("report", str(run_dir), "--format", "md", "--out", str(tmp_path / "report"),
               cache=tmp_path / "cache")  # fmt: skip
    assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
    text = "\n".join(p.read_text() for p in (tmp_path / "report").rglob("*.md"))
    for row in ROWS:
        assert row in text
    assert "92.21" in text and "85.78" in text  # the paper's RAF-DB numbers beside the rows
