"""Run every ``benchmarks/bench_*.py`` (each writes ``benchmarks/results/<name>.{json,md}``) and
write an index ``benchmarks/results/run.{json,md}`` with each one's exit status and wall time.

Run: ``OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.run [--only trainer synthfer]``.
``bench_memory`` needs a RAF-DB-layout export of 20,000 images (its docstring): set
``BENCH_MEMORY_ROOT=/path/to/export`` (and ``BENCH_MEMORY_ARGS``, e.g. ``--label after``), else it
is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="bench names without the bench_ prefix")
    args = ap.parse_args(argv)
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n.removeprefix("bench_") in args.only]
    rows = []
    for name in names:
        t = time.time()
        extra: list[str] = []
        if name == "bench_memory":
            root = os.environ.get("BENCH_MEMORY_ROOT")
            if not root:
                print("bench_memory skipped: set BENCH_MEMORY_ROOT (see its docstring)", flush=True)
                continue
            extra = ["--root", root, *shlex.split(os.environ.get("BENCH_MEMORY_ARGS", ""))]
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}", *extra], cwd=HERE.parent)
        rows.append({"bench": name, "rc": rc, "wall_s": round(time.time() - t, 1),
                     "results": [str(p.relative_to(HERE.parent)) for p in sorted(RESULTS.glob(f"{name}.*"))]})  # fmt: skip
        print(rows[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "run.json").write_text(json.dumps(rows, indent=1))
    md = ["# Benchmarks run", "", "| bench | exit | wall s | results |", "|---|---|---|---|"]
    md += [
        f"| {r['bench']} | {r['rc']} | {r['wall_s']} | {', '.join(r['results'])} |" for r in rows
    ]
    (RESULTS / "run.md").write_text("\n".join(md) + "\n")
    return int(any(r["rc"] for r in rows))


if __name__ == "__main__":
    raise SystemExit(main())
