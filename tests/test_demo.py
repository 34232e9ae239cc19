"""``python -m fer_core.demo`` (what ``make demo`` runs) at a reduced size, and its re-run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL = ["seeds=[0]", "trainer.epochs=1", "data.n_train=300", "data.n_val=100", "data.n_test=100"]


def _demo(tmp_path: Path) -> subprocess.CompletedProcess:
    args = ["--runs-root", str(tmp_path / "runs"), "--reports", str(tmp_path / "reports")]
    for ov in SMALL:
        args += ["-o", ov]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "fer_core.demo", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
        start_new_session=True,
    )


@pytest.mark.slow
def test_demo_runs_the_threshold_study_and_reports_it(tmp_path: Path):
    out = _demo(tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run_dir = tmp_path / "runs" / "pll_threshold-synth"
    with (run_dir / "trials.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    thresholds = sorted({float(r["param.method.revision.threshold"]) for r in rows})
    assert thresholds == [0.0, 0.1, 0.2, 0.3, 0.4, 0.9]  # [0, 0.5) where Eq. 4 acts, and "never"
    assert all(r["status"] == "TERMINATED" for r in rows)
    html = tmp_path / "reports" / "pll_threshold" / "index.html"
    assert html.is_file()
    page = html.read_text()
    assert "<img" in page or "<svg" in page  # the threshold curve is embedded
    assert "never" in page  # 0.9 is labelled: with |Y| = 2 nothing is revised there
    # the closing lines tell the user where everything is
    assert str(html.resolve()) in out.stdout
    assert f"fer-study dashboard {run_dir}" in out.stdout
    assert f"tensorboard --logdir {run_dir}" in out.stdout
    # a second `make demo` keeps the finished trials and runs nothing again
    again = _demo(tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "--resume" in again.stdout and "nothing to run" in again.stdout
    with (run_dir / "trials.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)


def test_demo_without_the_study_file_says_where_to_run_it(tmp_path: Path):
    from fer_core.demo import main

    assert main(["--studies", str(tmp_path / "nowhere")]) == 2
