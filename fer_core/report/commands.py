"""``fer-study report RUN_DIR...|STUDY_FILE [--format md,tex,csv,html] [--out DIR]``: written
next to the run (``RUN_DIR/report/``) unless ``--out`` says otherwise."""

from __future__ import annotations

import argparse
import sys

from fer_core.report import FORMATS, build_report


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fer-study report",
        description=(
            "Turn a finished or running study into paper-style plots and tables (sensitivity "
            "plots, ablation tables with deltas and significance, search summaries). Several run "
            "directories (profiles, datasets) combine into one report."
        ),
        epilog=(
            "examples:\n"
            "  fer-study report runs/pll_tau-synth\n"
            "  fer-study report runs/pll_ablation-synth runs/pll_ablation-paper --format md,tex\n"
            "  fer-study report studies/pll_tau.yaml --out /tmp/pll_tau"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="RUN_DIR...|STUDY_FILE",
        help="run directories runs/<study>-<profile>, or a study file (all its profiles' runs)",
    )
    parser.add_argument(
        "--format",
        default=",".join(FORMATS),
        help=f"comma-separated subset of {','.join(FORMATS)} (default: all; plots always)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output directory (default: RUN_DIR/report/; several runs: runs/<a+b>-report/)",
    )
    parser.add_argument(
        "--source",
        choices=("best", "final"),
        default="best",
        help="metric columns: best.<m> at the best-validation epoch (default) or final.<m>",
    )
    parser.add_argument(
        "--runs-root", default=None, help="where a study file's run directories are (default runs/)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        out = build_report(
            args.sources, args.format, args.out, source=args.source, runs_root=args.runs_root
        )
    except ValueError as exc:
        print(f"fer-study report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report written to {out}")
    html = out / "index.html"
    if html.is_file():
        print(f"open {html.resolve().as_uri()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
