"""``make reports [STUDY=name]``: the measured synth-profile report of shipped studies, kept in
the top-level ``reports/`` folder (committed, unlike ``runs/``).

For each study this runs (or resumes: finished trials are kept) ``fer-study run
studies/<study>.yaml --profile synth --run-dir runs/<study>-synth``, then writes
``reports/<study>/``::

    trials.csv, study.yaml, manifest.json   the run's record (every table rebuilds from these),
    reference/trials.csv                    and report.reference's own run, where the study has one
    report.md, tables/*.csv, plots/*.png    the report (no HTML, SVG or LaTeX: small diffs)
    MEASURED.json                           commit, date, machine and wall time it was measured at

and indexes every curated study in ``reports/README.md``. The report is built from the copied
record itself, so ``tests/report/test_curated_reports.py`` can rebuild each committed table from
``reports/<study>/trials.csv`` and compare.

    python -m fer_core.report.curate [--study NAME ...] [--studies DIR] [--runs-root DIR]
        [--out DIR] [-o KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from fer_core.report.assemble import assemble
from fer_core.report.collect import DONE, load_run
from fer_core.report.export import write_report_atomic

PROFILE = "synth"
RECORD = ("trials.csv", "study.yaml", "manifest.json", "reference/trials.csv")
FORMATS = ("md", "csv")


def git_commit(repo: Path) -> str:
    """``HEAD``'s commit, with ``+dirty`` when tracked files differ from it; ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", "fer_core", "studies"], cwd=repo
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine() -> str:
    """One line from the run manifest's own ``hardware()`` and ``versions()``: CPU count, model
    and the SIMD level torch dispatches to (CPU numbers can differ between machines that differ
    in it), platform, Python and torch versions."""
    from fer_core.tune.manifest import hardware, versions

    hw, v = hardware(), versions()
    cpu = ", ".join(str(x) for x in (hw["cpu_model"], hw.get("cpu_capability")) if x)
    return (
        f"{hw['cpus']} CPUs ({cpu}), {platform.machine()} {platform.system()}, "
        f"Python {v['python']}, torch {v.get('torch') or 'absent'}"
    )


def run_study(study_file: Path, run_dir: Path, overrides: list[str]) -> tuple[int, float]:
    """``fer-study run`` (resuming when ``run_dir`` holds a run); ``(exit code, wall seconds)``."""
    from fer_core.tune.results import is_started

    cmd = [sys.executable, "-m", "fer_core.cli", "run", str(study_file), "--profile", PROFILE]
    cmd += ["--run-dir", str(run_dir)]
    if is_started(run_dir):
        cmd.append("--resume")
    for ov in overrides:
        cmd += ["-o", ov]
    start = time.monotonic()
    rc = subprocess.run(cmd).returncode
    return rc, time.monotonic() - start


def ran_since(run_dir: Path, began: dt.datetime) -> bool:
    """Whether ``run_dir``'s manifest records a ``fer-study run`` started at or after ``began``
    (``runs[].at``, whole seconds): a run refused before it started (a study changed since its run
    directory was made, a bad setting) leaves only an earlier run's results there."""
    try:
        runs = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8")).get("runs", [])
        return any(dt.datetime.fromisoformat(r["at"]) >= began.replace(microsecond=0) for r in runs)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def curate(run_dir: Path, out_dir: Path, measured: dict) -> Path:
    """Copy ``run_dir``'s record into ``out_dir`` and write its report there (md, csv, png)."""
    out_dir = Path(out_dir)
    stage = out_dir.parent / f".{out_dir.name}.record"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name in RECORD:
        if (run_dir / name).is_file():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run_dir / name, stage / name)
    run = load_run(stage)
    run.run_dir = out_dir  # the report names where its record is committed
    report = assemble([run])
    final = write_report_atomic(report, out_dir, FORMATS, svg=False)
    for name in RECORD:
        if (stage / name).is_file():
            (final / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(stage / name, final / name)
    shutil.rmtree(stage, ignore_errors=True)
    trials = pd.read_csv(final / "trials.csv") if (final / "trials.csv").is_file() else None
    measured = dict(measured)
    if trials is not None:
        measured["trials_done"] = int((trials["status"].astype(str).str.upper() == DONE).sum())
        measured["trials"] = len(trials)
        measured["trial_wall_s_sum"] = round(float(trials["wall_s"].fillna(0).sum()), 1)
    (final / "MEASURED.json").write_text(json.dumps(measured, indent=2) + "\n", encoding="utf-8")
    return final


def write_index(out_root: Path) -> Path:
    """``reports/README.md``: one line per curated study, with when and where it was measured."""
    lines = [
        "# Measured reports",
        "",
        "The synth-profile report of each shipped study, measured with `make reports` (one study:",
        "`make reports STUDY=name`) and committed. Each folder holds the run's `trials.csv`,",
        "`study.yaml` and `manifest.json`, the report (`report.md`, `tables/*.csv`,",
        "`plots/*.png`) and `MEASURED.json`; `tests/report/test_curated_reports.py` rebuilds every",
        "table from `trials.csv` and compares.",
        "",
        "A rerun on the same machine repeats a report to the digit; CPU numbers can differ between",
        "machines (thread count, the SIMD level torch's kernels dispatch to), so `machine` names the",
        "CPU model and that level (records made before it was added name neither).",
        "",
        "| study | trials done | measured (UTC) | commit | machine | run wall (s) |",
        "|---|---|---|---|---|---|",
    ]
    out_root.mkdir(parents=True, exist_ok=True)  # a first make reports whose runs all failed
    for d in sorted(p for p in out_root.iterdir() if (p / "MEASURED.json").is_file()):
        m = json.loads((d / "MEASURED.json").read_text(encoding="utf-8"))
        done = f"{m.get('trials_done', '?')} / {m.get('trials', '?')}"
        lines.append(
            f"| [{d.name}]({d.name}/report.md) | {done} | {m.get('date', '?')} | "
            f"{str(m.get('commit', '?'))[:12]} | {m.get('machine', '?')} | "
            f"{m.get('run_wall_s', '?')} |"
        )
    path = out_root / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m fer_core.report.curate",
        description=(
            "Run (or resume) shipped studies' synth profile and write their measured reports "
            "into reports/<study>/ (what `make reports` runs)."
        ),
    )
    ap.add_argument("--study", action="append", default=[], help="a study name (default: all)")
    ap.add_argument("--studies", default="studies", help="folder of study files (default studies/)")
    ap.add_argument("--runs-root", default="runs", help="run directories (default runs/)")
    ap.add_argument("--out", default="reports", help="curated reports folder (default reports/)")
    ap.add_argument("-o", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    studies = Path(args.studies)
    names = args.study or sorted(p.stem for p in studies.glob("*.yaml"))
    missing = [n for n in names if not (studies / f"{n}.yaml").is_file()]
    if missing:
        known = ", ".join(sorted(p.stem for p in studies.glob("*.yaml")))
        print(f"make reports: STUDY={','.join(missing)} is not in {studies}/; known: {known}")
        return 2
    repo = Path(__file__).resolve().parents[2]
    failed = []
    for name in names:
        run_dir = Path(args.runs_root) / f"{name}-{PROFILE}"
        began = dt.datetime.now(dt.UTC)
        rc, wall = run_study(studies / f"{name}.yaml", run_dir, args.overrides)
        if rc != 0:
            failed.append(name)
            print(f"make reports: {name}: fer-study run stopped with exit code {rc}", flush=True)
            if not (run_dir / "trials.csv").is_file():
                continue  # nothing measured to report; finished trials of others are kept
            if not ran_since(run_dir, began):  # its results are an earlier run's, of other code
                print(
                    f"make reports: {name}: the run did not start, so {run_dir} holds only an "
                    f"earlier run's results; {Path(args.out) / name} is left as it was",
                    flush=True,
                )
                continue
        measured = {
            "study": name,
            "profile": PROFILE,
            "run_dir": str(run_dir),
            "commit": git_commit(repo),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
            "machine": machine(),
            "run_wall_s": round(wall, 1),
            "overrides": list(args.overrides),
        }
        out = curate(run_dir, Path(args.out) / name, measured)
        print(f"make reports: {name} -> {out}", flush=True)
    write_index(Path(args.out))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
