"""Write a report directory atomically: build everything in a temporary sibling directory, then
swap it into place, so an interrupted report leaves the previous one intact.

Layout of a report directory (by default ``<run_dir>/report/``)::

    index.html              (html) self-contained page
    report.md               (md) the whole report, plots linked from plots/
    tables/<name>.tex       (tex) booktabs tables, one per table
    tables/<name>.csv       (csv) display tables; stats.csv: numeric cell statistics (fractions)
    plots/<name>.png|.svg   every plot, always written
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from fer_core.report.assemble import Report, to_markdown_report
from fer_core.report.render import to_csv, to_latex

FORMATS = ("md", "tex", "csv", "html")


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """``"md,tex"`` or ``["md", "tex"]`` -> validated list; raises ValueError naming the bad one."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    out = [f.strip().lower() for f in items if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise ValueError(
            f"--format {','.join(bad) or '(empty)'} is not allowed; use a comma-separated subset of "
            f"{','.join(FORMATS)}"
        )
    return list(dict.fromkeys(out))


def write_files(report: Report, root: Path, formats: Iterable[str], svg: bool = True) -> None:
    """Write the report's files under ``root`` (a fresh directory); plots as PNG, and SVG
    unless ``svg`` is False (the curated ``reports/`` keeps PNG only)."""
    formats = list(formats)
    (root / "plots").mkdir(parents=True, exist_ok=True)
    for plot in report.plots:
        (root / "plots" / f"{plot.name}.png").write_bytes(plot.png)
        if svg:
            (root / "plots" / f"{plot.name}.svg").write_bytes(plot.svg)
    if "tex" in formats or "csv" in formats:
        (root / "tables").mkdir(exist_ok=True)
    for table in report.tables:
        if "tex" in formats:
            caption = f"{report.name}: {table.title}"
            (root / "tables" / f"{table.name}.tex").write_text(
                to_latex(table, caption=caption, label=f"tab:{report.name}-{table.name}"),
                encoding="utf-8",
            )
        if "csv" in formats:
            (root / "tables" / f"{table.name}.csv").write_text(to_csv(table), encoding="utf-8")
    if "csv" in formats and not report.stats.empty:
        report.stats.to_csv(root / "tables" / "stats.csv", index=False)
    if "md" in formats:
        (root / "report.md").write_text(to_markdown_report(report), encoding="utf-8")
    if "html" in formats:
        from fer_core.report.html import to_html_report

        (root / "index.html").write_text(to_html_report(report), encoding="utf-8")


def write_report_atomic(
    report: Report, out_dir: str | Path, formats: Iterable[str], svg: bool = True
) -> Path:
    """Build the report in ``.<name>.tmp-*`` next to ``out_dir`` and swap it in.

    The swap renames the old directory aside, renames the new one into place and deletes the old
    one; a crash between the two renames leaves the previous report in ``.<name>.old-*``, which
    the next call restores before writing.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _restore_interrupted(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        write_files(report, tmp, formats, svg=svg)
        os.chmod(tmp, 0o755)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.rmdir(old)
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir


def _restore_interrupted(out_dir: Path) -> None:
    olds = sorted(out_dir.parent.glob(f".{out_dir.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not out_dir.exists() and olds:
        os.rename(olds[-1], out_dir)
        olds = olds[:-1]
    # tmp dirs of a concurrent report are young: only remove those left by a crash long ago
    tmps = [
        t
        for t in out_dir.parent.glob(f".{out_dir.name}.tmp-*")
        if time.time() - t.stat().st_mtime > 3600
    ]
    for stale in [*olds, *tmps]:
        shutil.rmtree(stale, ignore_errors=True)
