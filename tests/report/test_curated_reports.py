"""Every committed report in reports/ rebuilds from its own record (trials.csv, study.yaml,
manifest.json): the tables and statistics equal what the current report code makes of them.
Each committed folder is one case (``make reports STUDY=name`` adds one)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from fer_core.report import assemble, load_run
from fer_core.report.render import to_csv

REPO = Path(__file__).resolve().parents[2]
CURATED = sorted(p.parent.name for p in (REPO / "reports").glob("*/MEASURED.json"))


@pytest.mark.parametrize("study", CURATED)
def test_committed_tables_rebuild_from_the_record(study, monkeypatch):
    monkeypatch.chdir(REPO)  # the report names its record as reports/<study>
    folder = Path("reports") / study
    report = assemble([load_run(folder)])
    for table in report.tables:
        committed = folder / "tables" / f"{table.name}.csv"
        assert committed.is_file(), f"{committed} missing: rerun make reports STUDY={study}"
        assert committed.read_text(encoding="utf-8") == to_csv(table), (
            f"{committed} differs from a rebuild: rerun make reports STUDY={study}"
        )
    if not report.stats.empty:
        committed = pd.read_csv(folder / "tables" / "stats.csv")
        rebuilt = pd.read_csv(io.StringIO(report.stats.to_csv(index=False)))
        pd.testing.assert_frame_equal(committed, rebuilt)
