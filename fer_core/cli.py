"""``fer-study``: the thin command-line entry point.

Each sub-command lives in its package (``fer_core/<pkg>/commands.py``) as ``main(argv) -> int``;
this module only dispatches, and imports a sub-command's module when it is used, so
``fer-study --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from fer_core import __version__

# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("fer_core.tune.commands", "run a study file as Ray Tune trials (or --dry-run it)"),
    "validate": ("fer_core.study.commands:validate_main", "check study / search-space files"),
    "list": ("fer_core.study.commands:list_main", "list the studies in studies/"),
    "train": ("fer_core.engine.commands", "train one recipe (Hydra overrides: key=value ...)"),
    "report": ("fer_core.report.commands", "turn a study into paper-style plots and tables"),
    "dashboard": ("fer_core.tune.dashboard", "serve optuna-dashboard for a study's storage"),
    "data": ("fer_core.data.commands", "export SynthFER, check real dataset layouts"),
}

EPILOG = """examples:
  fer-study train trainer.epochs=3                    train the default recipe on SynthFER
  fer-study run studies/quickstart.yaml               run a study (Ray Tune + Optuna)
  fer-study run studies/pll_threshold.yaml --dry-run  show its trials without running them
  fer-study report runs/quickstart-synth              its report, in runs/quickstart-synth/report/
  fer-study data check rafdb --root /data/RAF-DB      verify a real dataset's layout

Run 'fer-study COMMAND --help' for a command's options."""


def _resolve(target: str):
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func or "main")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="fer-study",
        description="Which knob of a facial-expression-recognition recipe matters, and by how much.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"fer-study {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    target, _ = COMMANDS[argv[0]]
    return int(_resolve(target)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
