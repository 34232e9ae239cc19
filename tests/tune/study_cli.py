"""Run a shipped study end to end at a reduced size, as a user would: ``fer-study run`` and
``fer-study report`` with their own argument lists, in this process.

Shared by ``test_study_runs.py`` and ``test_runner_quickstart.py``. Each such module asks
for the ``study_session`` fixture: one local Ray session (2 CPUs, started as ``fer-study run`` starts
it) and a private stage cache for the module. In-process runs skip a second interpreter's start
(~10 s of imports on 2 cores) and a Ray start per command; the commands themselves are the
ones a user runs (``fer_core.tune.commands.main``, ``fer_core.report.commands.main``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", name="study_session")
def study_session_fixture(tmp_path_factory):
    """The module's Ray session and stage cache (yielded): the trials' ``FER_STUDY_CACHE`` is set
    when Ray starts, so one module shares one cache."""
    import ray

    from fer_core.tune.runner import _ray_init

    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FER_STUDY_CACHE", str(cache))
        mp.setenv("OMP_NUM_THREADS", "1")  # the trials' threads, as the CLI tests ran them
        assert not ray.is_initialized(), "another module left Ray running"
        started, _ = _ray_init(None, {"num_cpus": 2})
        try:
            yield cache
        finally:
            if started:
                ray.shutdown()


def run_study(
    study: str, tmp_path: Path, overrides: list[str]
) -> tuple[Path, list[dict[str, str]]]:
    """``fer-study run studies/<study>.yaml`` (synth profile, 2 CPUs) with ``-o`` overrides into
    ``tmp_path/<study>-synth``; assert it exits 0; return the run dir and its trials.csv rows."""
    from fer_core.tune.commands import main

    run_dir = tmp_path / f"{study}-synth"
    small = [a for ov in overrides for a in ("-o", ov)]
    rc = main([str(REPO / "studies" / f"{study}.yaml"), "--run-dir", str(run_dir),
               "--num-cpus", "2", *small])  # fmt: skip
    assert rc == 0, f"fer-study run exited {rc} (its output is above)"
    with (run_dir / "trials.csv").open() as fh:
        return run_dir, list(csv.DictReader(fh))


def report_markdown(run_dir: Path, tmp_path: Path) -> str:
    """``fer-study report RUN --format md`` into ``tmp_path/report``; every Markdown file's text."""
    from fer_core.report.commands import main

    out_dir = tmp_path / "report"
    rc = main([str(run_dir), "--format", "md", "--out", str(out_dir)])
    assert rc == 0, f"fer-study report exited {rc} (its output is above)"
    return "\n".join(p.read_text() for p in sorted(out_dir.rglob("*.md")))
