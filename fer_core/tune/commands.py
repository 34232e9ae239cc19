"""``fer-study run FILE``: run a study file as Ray Tune trials (or ``--dry-run`` it).

Exit codes: 0 done, 1 bad input (the message says what to change), 130 interrupted (the message
says how to resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from fer_core.tune.trainable import REAL_TRAIN_FN


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fer-study run",
        description="Run a study: Ray Tune trials, Optuna storage (optuna-dashboard), trials.csv.",
    )
    p.add_argument("file", help="study YAML (studies/*.yaml)")
    p.add_argument("--profile", default=None, help="profile of the study (default: synth)")
    p.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a study field (seeds, num_samples, resources.gpu, ...) or a trainer override",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted run")
    mode.add_argument("--new", action="store_true", help="start a numbered sibling run directory")
    p.add_argument("--dry-run", action="store_true", help="print the trials; run nothing")
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL (default: sqlite in RUN_DIR), e.g. "
        "postgresql://user@host:5432/db (password: PGPASSWORD or ~/.pgpass; masked in logs)",
    )
    p.add_argument(
        "--address", default=None, help="existing Ray cluster: auto | host:port | ray://host:port"
    )
    p.add_argument(
        "--storage-path",
        default=None,
        metavar="URI",
        help="Tune's storage for a multi-machine cluster (s3://..., gs://..., file:///shared); "
        "default RUN_DIR/tune",
    )
    p.add_argument(
        "--trial-resource",
        action="append",
        default=[],
        metavar="NAME=N",
        help="a custom Ray resource each trial needs (a node started with --resources)",
    )
    p.add_argument(
        "--gpus-per-trial", type=float, default=None, help="GPUs per trial (fractions ok)"
    )
    p.add_argument(
        "--cpu-only", action="store_true", help="train on CPU even if the study asks GPUs"
    )
    p.add_argument(
        "--run-dir", default=None, help="run directory (default: runs/<study>-<profile>)"
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show Ray's own output too (banners, checkpoint lines, trial output)",
    )
    # For tests and benchmarks: a train function 'module:function' instead of the trainer.
    p.add_argument("--train-fn", default=REAL_TRAIN_FN, help=argparse.SUPPRESS)
    p.add_argument("--progress-interval", type=float, default=10.0, help=argparse.SUPPRESS)
    p.add_argument("--num-cpus", type=int, default=None, help=argparse.SUPPRESS)
    return p


def load_spec(path: str, profile: str | None, overrides: list[str]):
    """The study helper's ``load_study`` -> (ResolvedStudy, StudySpec)."""
    from fer_core.study import load_study
    from fer_core.tune.spec import spec_from_study

    study = load_study(path, profile, overrides)
    return study, spec_from_study(study)


def quick_spec(path: str, profile: str | None, overrides: list[str]):
    """The study's spec without the knob checks (no trainer imports), or None when the file does
    not load that way (the full :func:`load_spec` then reports it)."""
    from fer_core.study import load_study
    from fer_core.tune.spec import spec_from_study

    try:
        return spec_from_study(load_study(path, profile, overrides, check_knobs=False))
    except (ValueError, FileNotFoundError, TypeError):
        return None


def dry_run(study) -> str:
    from fer_core.study import format_plan, plan_trials
    from fer_core.tune.reference import reference_block, reference_settings

    text = format_plan(plan_trials(study))
    ref = reference_block(study)
    if ref is not None:
        settings = reference_settings(study) or {}
        changed = " ".join(f"{k}={v}" for k, v in (ref.get("set") or {}).items()) or "the base"
        text += (
            f"\nplus report.reference ({ref.get('label', 'reference')}): {changed} on the base, "
            f"{len(study.seeds)} seed(s), its own run in RUN_DIR/reference/ "
            f"({len(settings)} settings)"
        )
    return text


def parse_trial_resources(items: list[str]) -> dict[str, float]:
    """``--trial-resource NAME=N`` (repeatable) -> ``{NAME: N}``."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            amount = float(value)
        except ValueError:
            amount = -1.0
        if not sep or not name or amount <= 0 or name in ("CPU", "GPU"):
            raise ValueError(
                f"--trial-resource {item!r}: give NAME=N with N > 0 for a custom Ray resource "
                "(CPUs and GPUs: -o resources.cpu=N, --gpus-per-trial N)"
            )
        out[name] = amount
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fer_core.tune.resources import UnsatisfiableResourcesError
    from fer_core.tune.results import is_started
    from fer_core.tune.runner import (
        ClusterAddressError,
        NoGPUError,
        StudyChangedError,
        default_run_dir,
        new_run_dir,
        precheck_local,
        run_study,
        trial_gpus,
    )
    from fer_core.tune.storage import StorageError, mask_text

    ray_kwargs = {"num_cpus": args.num_cpus} if args.num_cpus else None
    try:
        custom = parse_trial_resources(args.trial_resource)
    except ValueError as exc:
        print(f"fer-study run: {exc}", file=sys.stderr)
        return 1
    if not args.dry_run and not args.address:
        try:  # before the knob checks' imports: an unsatisfiable request fails in about a second
            quick = quick_spec(args.file, args.profile, list(args.override))
            if quick is not None:
                precheck_local(
                    quick,
                    gpus_per_trial=args.gpus_per_trial,
                    cpu_only=args.cpu_only,
                    trial_resources=custom,
                    ray_init_kwargs=ray_kwargs,
                )
        except UnsatisfiableResourcesError as exc:
            note = trial_gpus(quick, args.gpus_per_trial, args.cpu_only)[1]
            if note:
                print(note, flush=True)
            print(f"fer-study run: {exc}", file=sys.stderr)
            return 1
    try:
        study, spec = load_spec(args.file, args.profile, list(args.override))
    except (ValueError, FileNotFoundError) as exc:
        print(f"fer-study run: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        gpu, note = trial_gpus(spec, args.gpus_per_trial, args.cpu_only)
        if gpu != float(study.resources.get("gpu") or 0):  # the plan shows what the run would ask
            study.resources = {**study.resources, "gpu": gpu}
        print(dry_run(study) + (f"\n{note}" if note else ""))
        return 0
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(spec)
    if is_started(run_dir) and not args.resume:
        if not args.new:
            print(
                f"fer-study run: {run_dir} already holds a run; add --resume to continue it or "
                "--new to start a numbered sibling",
                file=sys.stderr,
            )
            return 1
        run_dir = new_run_dir(run_dir)
    if args.resume and not is_started(run_dir):
        print(
            f"fer-study run: nothing to resume in {run_dir}; run without --resume", file=sys.stderr
        )
        return 1
    from fer_core.tune.reference import reference_block, reference_dir, reference_spec

    ref_spec = reference_spec(study, spec)
    common = dict(
        storage=args.storage,
        address=args.address,
        trial_resources=custom,
        gpus_per_trial=args.gpus_per_trial,
        cpu_only=args.cpu_only,
        train_fn=args.train_fn,
        argv=["fer-study", "run", *(argv if argv is not None else sys.argv[1:])],
        study_file=args.file,
        ray_init_kwargs=ray_kwargs,
        progress_interval=args.progress_interval,
        verbose=args.verbose,
        # one local Ray session for the study and its reference run, started when either has
        # something to run (a finished run resumed starts none) and shut down below
        keep_ray=ref_spec is not None and not args.address,
    )
    import ray

    ray_before = ray.is_initialized()
    try:
        result = run_study(
            spec, run_dir, storage_path=args.storage_path, resume=args.resume, **common
        )
        if ref_spec is not None and not result.interrupted:
            ref_dir = reference_dir(run_dir)
            label = (reference_block(study) or {}).get("label", "reference")
            print(f"report.reference ({label}): its own run in {ref_dir}", flush=True)
            ref_path = f"{args.storage_path.rstrip('/')}/reference" if args.storage_path else None
            ref = run_study(
                ref_spec, ref_dir, storage_path=ref_path, resume=is_started(ref_dir), **common
            )
            result = dataclasses.replace(result, interrupted=ref.interrupted)
    except (
        StudyChangedError,
        NoGPUError,
        ValueError,
        StorageError,
        UnsatisfiableResourcesError,
        ClusterAddressError,
    ) as exc:
        print(f"fer-study run: {mask_text(str(exc), args.storage)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        from fer_core.tune.runner import resume_hint

        print(resume_hint(run_dir, args.file), file=sys.stderr)
        return 130
    finally:
        if common["keep_ray"] and not ray_before and ray.is_initialized():
            ray.shutdown()
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
