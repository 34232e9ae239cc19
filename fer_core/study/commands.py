"""``fer-study validate FILE...`` and ``fer-study list``.

``validate`` prints every problem of every file at once (``file:line: key.path: message``) and
exits 1 if there is any; with no FILE it checks ``studies/*.yaml`` and ``search_spaces/*.yaml``.
``list`` prints the studies in ``./studies`` (or ``--dir``) with the paper figure/table they
reproduce and their trial counts (configurations x seeds) per profile.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fer_core.study.errors import StudyValidationError
from fer_core.study.loader import load_study, read_study
from fer_core.study.plan import plan_trials
from fer_core.study.validate import validate_files


def _default_files(root: Path) -> list[Path]:
    return sorted((root / "studies").glob("*.yaml")) + sorted(
        (root / "search_spaces").glob("*.yaml")
    )


def validate_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="fer-study validate",
        description="Check study and search-space files: every error at once, with file, "
        "line and key path. Exit code 1 if any file has a problem.",
    )
    p.add_argument("files", nargs="*", help="files (default: studies/*.yaml search_spaces/*.yaml)")
    args = p.parse_args(argv)
    files = [Path(f) for f in args.files] or _default_files(Path.cwd())
    if not files:
        print("fer-study validate: no files given and none in studies/ or search_spaces/")
        return 1
    errors = validate_files(files)
    for e in errors:
        print(e)
    bad = len({e.file for e in errors})
    if errors:
        print(f"{len(errors)} problem(s) in {bad} of {len(files)} file(s)")
        return 1
    print(f"ok: {len(files)} file(s) valid")
    return 0


def study_rows(directory: Path) -> list[dict[str, str]]:
    """One row per study file: name, paper, kind and ``profile: configs x seeds = trials``."""
    rows = []
    for path in sorted(directory.glob("*.yaml")):
        row = {"file": path.name, "name": path.stem, "paper": "", "search": "", "trials": ""}
        try:
            profiles = read_study(path).profiles() or [None]
            counts = []
            for prof in profiles:
                study = load_study(path, prof, check_knobs=False)
                plan = plan_trials(study)
                counts.append(
                    f"{study.profile}: {plan.num_configs}x{len(plan.seeds)}={plan.n_trials}"
                )
            row.update(
                name=study.name,
                paper=study.paper or "",
                search="ablation" if study.ablation else str(study.algorithm.get("name")),
                trials=", ".join(counts),
            )
        except (StudyValidationError, ValueError, FileNotFoundError) as exc:
            n = len(getattr(exc, "errors", [])) or 1
            row["trials"] = f"INVALID ({n} problem(s); run fer-study validate {path})"
        rows.append(row)
    return rows


def list_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="fer-study list",
        description="List the studies in studies/ with their paper figure/table and trial "
        "counts per profile (configurations x seeds = trials).",
    )
    p.add_argument("--dir", default="studies", help="folder of study files (default: studies)")
    args = p.parse_args(argv)
    directory = Path(args.dir)
    if not directory.is_dir():
        print(f"fer-study list: {directory} is not a folder; run from the repository root")
        return 1
    rows = study_rows(directory)
    if not rows:
        print(f"no studies in {directory}/")
        return 0
    cols = ("name", "paper", "search", "trials")
    width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols[:-1]}
    print("  ".join(c.ljust(width[c]) for c in cols[:-1]) + "  trials per profile")
    for r in rows:
        print("  ".join(r[c].ljust(width[c]) for c in cols[:-1]) + "  " + r["trials"])
    return 0 if all("INVALID" not in r["trials"] for r in rows) else 1
