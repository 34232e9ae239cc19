"""The demo behind ``make demo``: run ``studies/pll_threshold.yaml`` on SynthFER and report it.

    python -m fer_core.demo                    # what `make demo` runs (synth profile, 18 trials)
    python -m fer_core.demo -o seeds=[0]       # any `fer-study run -o` override, passed through

Steps: ``fer-study run studies/pll_threshold.yaml`` (``--resume`` when the run directory already
holds a run, so finished trials are kept and only missing ones run), then ``fer-study report``;
finally it prints where the HTML report is and how to open optuna-dashboard and TensorBoard.
Both steps run as ``fer-study`` subprocesses, exactly what a user would type.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from fer_core.tune.dashboard import tensorboard_command
from fer_core.tune.results import is_started

STUDY = "pll_threshold"
PROFILE = "synth"


def _fer_study(*args: str) -> int:
    cmd = [sys.executable, "-m", "fer_core.cli", *args]
    print("$ fer-study " + " ".join(args), flush=True)
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m fer_core.demo",
        description=(
            "Run the demo study (studies/pll_threshold.yaml, synth profile: PLL's revision "
            "threshold swept over 6 values x 3 seeds on SynthFER) and write its report."
        ),
    )
    ap.add_argument(
        "--studies", default="studies", help="folder holding pll_threshold.yaml (default studies/)"
    )
    ap.add_argument("--runs-root", default="runs", help="where run directories go (default runs/)")
    ap.add_argument(
        "--reports",
        default=None,
        help="write the report to REPORTS/<study>/ (default: next to the run, RUN_DIR/report/)",
    )
    ap.add_argument(
        "-o",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to fer-study run -o (e.g. seeds=[0])",
    )
    args = ap.parse_args(argv)

    study_file = Path(args.studies) / f"{STUDY}.yaml"
    if not study_file.is_file():
        print(
            f"demo: {study_file} not found; run from the repository root or give --studies DIR",
            file=sys.stderr,
        )
        return 2
    run_dir = Path(args.runs_root) / f"{STUDY}-{PROFILE}"
    out_dir = Path(args.reports) / STUDY if args.reports else run_dir / "report"

    run_args = ["run", str(study_file), "--profile", PROFILE, "--run-dir", str(run_dir)]
    if is_started(run_dir):
        run_args.append("--resume")  # keep finished trials; run only what is missing
    for ov in args.overrides:
        run_args += ["-o", ov]
    rc = _fer_study(*run_args)
    if rc != 0:
        print(
            f"demo: the study stopped with exit code {rc}; see the messages above", file=sys.stderr
        )
        return rc
    rc = _fer_study("report", str(run_dir), "--out", str(out_dir))
    if rc != 0:
        return rc

    html = sorted(out_dir.glob("*.html"))
    print()
    print("demo done.")
    if html:
        print(f"  report (open in a browser): {html[0].resolve()}")
    print(f"  Markdown / LaTeX / CSV:     {out_dir.resolve()}/")
    print(f"  trials table:               {(run_dir / 'trials.csv').resolve()}")
    print(f"  optuna-dashboard:           fer-study dashboard {run_dir}   (http://127.0.0.1:8080)")
    print(f"  TensorBoard:                {tensorboard_command(run_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
