"""``fer-study dashboard [RUN_DIR | --storage URL] [--port P]``: optuna-dashboard on 127.0.0.1.

The storage is the run's (``manifest.json``'s ``storage``, else ``RUN_DIR/optuna.db``) or any
SQLAlchemy URL. A manifest keeps a server URL with its password masked (``***``); the dashboard
then connects without it, so libpq takes it from ``PGPASSWORD`` or ``~/.pgpass``. The server binds 127.0.0.1 only; it runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HOST = "127.0.0.1"


def tensorboard_command(run_dir: str | Path) -> str:
    """The one TensorBoard command README, demo and report give: every trial's own events, one
    run per trial named like its directory (``c0004_threshold-0.0_s1``). Ray's copies are off
    (``runner.quiet_ray``), so ``--logdir RUN_DIR`` shows the same runs."""
    return f"tensorboard --logdir {Path(run_dir) / 'trials'} --host {HOST}"


def storage_for(run_dir: str | Path) -> str:
    """The Optuna storage URL of a run directory."""
    run_dir = Path(run_dir).resolve()
    manifest = run_dir / "manifest.json"
    if manifest.is_file():
        url = json.loads(manifest.read_text(encoding="utf-8")).get("storage")
        if url:
            return str(url)
    db = run_dir / "optuna.db"
    if not db.is_file():
        raise ValueError(
            f"RUN_DIR: {run_dir} has neither manifest.json nor optuna.db; give a run directory "
            "(runs/<study>-<profile>) or --storage URL"
        )
    return f"sqlite:///{db}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fer-study dashboard", description="optuna-dashboard for a study's storage (127.0.0.1)"
    )
    p.add_argument(
        "run_dir", nargs="?", default=None, help="run directory (runs/<study>-<profile>)"
    )
    p.add_argument("--storage", default=None, help="an Optuna storage URL instead of RUN_DIR")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.run_dir) == bool(args.storage):
        print("fer-study dashboard: give RUN_DIR or --storage URL (one of them)", file=sys.stderr)
        return 1
    try:
        url = args.storage or storage_for(args.run_dir)
    except ValueError as exc:
        print(f"fer-study dashboard: {exc}", file=sys.stderr)
        return 1
    from optuna_dashboard import run_server

    from fer_core.tune.storage import StorageError, mask_url, open_storage

    try:
        storage = open_storage(url)
    except StorageError as exc:
        print(f"fer-study dashboard: {exc}", file=sys.stderr)
        return 1
    print(
        f"optuna-dashboard on http://{HOST}:{args.port}/ for {mask_url(url)} (Ctrl-C stops)",
        flush=True,
    )
    try:
        run_server(storage, host=HOST, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
