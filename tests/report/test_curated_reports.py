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


def test_every_shipped_study_has_a_committed_report():
    shipped = {p.stem for p in (REPO / "studies").glob("*.yaml")}
    curated = set(CURATED)
    missing = shipped - curated  # a new study comes with its report: make reports STUDY=<name>
    assert not missing, f"no report in reports/ for {sorted(missing)}: make reports STUDY=<name>"
    stale = curated - shipped
    assert not stale, f"reports/ has a report of no study in studies/: {sorted(stale)}"
    index = (REPO / "reports" / "README.md").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for study in curated:
        assert f"[{study}]({study}/report.md)" in index, f"reports/README.md does not list {study}"
        assert f"(reports/{study}/report.md)" in readme, f"README's study table: link {study}"


def test_the_readme_demo_numbers_are_the_committed_report_s():
    """README's "What the demo shows": each "X +- Y % at T" is reports/pll_threshold/'s
    test/acc_true at threshold T (rounded to 0.1), and the CE reference line is its reference row."""
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    para = " ".join(readme.split("What the demo shows", 1)[1].split("\n\n", 1)[0].split())
    table = pd.read_csv(REPO / "reports" / "pll_threshold" / "tables" / "sensitivity.csv")
    cells = {str(k): v for k, v in zip(table.iloc[:, 0], table["test/acc_true"], strict=True)}

    def mean_std(cell: str) -> tuple[str, str]:
        from decimal import ROUND_HALF_UP, Decimal

        pair = re.match(r"([\d.]+) ± ([\d.]+)", cell).groups()  # as printed, rounded half up
        return tuple(str(Decimal(v).quantize(Decimal("0.1"), ROUND_HALF_UP)) for v in pair)

    found = re.findall(r"([\d.]+) \+- ([\d.]+) % at(?: threshold)? ([\d.]+)", para)
    assert len(found) == 6, para
    for mean, std, x in found:
        assert (mean, std) == mean_std(cells[x]), f"README says {mean} +- {std} at {x}: {cells[x]}"
    ref = next(v for k, v in cells.items() if k.startswith("reference"))
    assert (
        "CE on the plurality labels under the same budget, reaches {} +- {} %".format(
            *mean_std(ref)
        )
        in para
    ), para
