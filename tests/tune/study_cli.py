"""Run a shipped study end to end at a reduced size, as a user would: ``fer-study run`` and
``fer-study report`` in their own process, with a private stage cache.

Shared by the end-to-end study tests of this folder (``test_*_study.py``)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cache: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m fer_core.cli ARGS`` from the repository root, one thread, cache at ``cache``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", FER_STUDY_CACHE=str(cache))
    return subprocess.run(
        [sys.executable, "-m", "fer_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
        start_new_session=True,
    )


def run_study(
    study: str, tmp_path: Path, overrides: list[str], timeout: int = 600
) -> tuple[Path, list[dict[str, str]]]:
    """Run ``studies/<study>.yaml`` (synth profile, 2 CPUs) with ``-o`` overrides into
    ``tmp_path/<study>-synth``; assert it exits 0; return the run dir and its trials.csv rows."""
    run_dir = tmp_path / f"{study}-synth"
    small = [a for ov in overrides for a in ("-o", ov)]
    out = cli("run", str(REPO / "studies" / f"{study}.yaml"), "--run-dir", str(run_dir),
              "--num-cpus", "2", *small, cache=tmp_path / "cache", timeout=timeout)  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    with (run_dir / "trials.csv").open() as fh:
        return run_dir, list(csv.DictReader(fh))


def report_markdown(run_dir: Path, tmp_path: Path) -> str:
    """``fer-study report RUN --format md`` into ``tmp_path/report``; every Markdown file's text."""
    out_dir = tmp_path / "report"
    rep = cli("report", str(run_dir), "--format", "md", "--out", str(out_dir),
              cache=tmp_path / "cache")  # fmt: skip
    assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
    return "\n".join(p.read_text() for p in sorted(out_dir.rglob("*.md")))
