"""Run a study: data prepared once, Ray Tune trials, the Optuna storage, ``trials.csv``.

``run_study(spec, run_dir)`` writes the run directory of INTERFACES.md::

    manifest.json  study.yaml  optuna.db  trials.csv  trials/<c####_setting_s#>/  tune/attempt-<n>/

Each start (first run or ``--resume``) is a fresh Tune experiment ``tune/attempt-<n>`` fed by the
:class:`~fer_core.tune.searcher.SeedGroupSearcher`, whose only state is the Optuna storage plus
``trials.csv`` (PITFALLS.md: ``Tuner.restore`` with Optuna storage crashes after a kill). Unfinished
trials restart from the last checkpoint in their stable trial directory.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fer_core.tune import pauses
from fer_core.tune.manifest import study_changes, write_manifest, write_study_yaml
from fer_core.tune.progress import ProgressCallback, best_so_far
from fer_core.tune.resources import check_cluster, check_local, trial_request
from fer_core.tune.results import ResultBook, trial_dirname
from fer_core.tune.spec import StudySpec
from fer_core.tune.storage import (
    conditions,
    default_storage_url,
    mask_text,
    mask_url,
    num_configs,
    open_study,
    to_distributions,
)
from fer_core.tune.trainable import REAL_TRAIN_FN, TrainFn, make_trainable


class StudyChangedError(ValueError):
    """``--resume`` with a study file that differs from the one the run started with."""


class NoGPUError(RuntimeError):
    """The study asks for GPUs and the Ray cluster has none (``--cpu-only`` runs it on CPU)."""


class RunDirError(ValueError):
    """The run directory cannot be written (read-only path, no permission): found before Ray."""


class ClusterAddressError(RuntimeError):
    """``--address`` names a Ray cluster that does not answer."""


#: Seconds ``--address host:port`` may take to accept a TCP connection.
ADDRESS_TIMEOUT_S = 10.0


@dataclass
class StudyResult:
    run_dir: Path
    counts: dict[str, int]
    best: tuple[int, float] | None
    wall_s: float
    ray_init_s: float
    interrupted: bool
    reconcile: dict[str, int] = field(default_factory=dict)


def resume_hint(run_dir: Path, study_file: str | None = None) -> str:
    target = study_file or "<study file>"
    return f"interrupted; continue with: fer-study run {target} --resume --run-dir {run_dir}"


def prepare_data(spec: StudySpec) -> str | None:
    """Build the data cache once per study (before any trial) and return the data hash."""
    from omegaconf import OmegaConf

    from fer_core.data import prepare
    from fer_core.engine.build import compose

    cfg = compose(list(spec.base_overrides))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    name = data.pop("name")
    try:  # keys the trainer's data group has but the dataset builder does not take
        from fer_core.data import dataset_kwargs

        allowed = set(dataset_kwargs(name))
        data = {k: v for k, v in data.items() if k in allowed}
    except ImportError:
        pass
    return prepare(name, **data)


#: Ray's own console output that ``--verbose`` brings back: banners, checkpoint lines, Tune's
#: status tables and TensorBoard hints (INFO logs), the workers' output, the usage-stats prompt.
QUIET_ENV = {
    "RAY_DEDUP_LOGS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}
QUIET_LOGGERS = ("ray", "ray.tune", "ray.train", "ray.air", "ray._private", "ray.data")


def quiet_ray(verbose: bool) -> None:
    """Ray's output off (``verbose=False``) or as Ray prints it. Ray's TensorBoard logger stays
    off either way (each trial writes its own events under ``trials/``; the runner adds Ray's
    JSON and CSV loggers itself)."""
    import logging

    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    if verbose:
        return
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def check_address(address: str | None, timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """``--address host:port`` (or ``ray://host:port``) must accept a TCP connection within
    ``timeout`` seconds; ``auto`` and ``local`` are Ray's to resolve."""
    import socket

    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterAddressError(
            f"--address {address}: give host:port (a head's GCS port, default 6379), "
            "ray://host:port (Ray Client, default 10001) or auto"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterAddressError(
            f"--address {address}: no Ray cluster answers ({exc.strerror or exc}); check that the "
            f"head runs ('ray status --address {hostport}' on it), that port {port} is open from "
            "this machine, and the address printed by 'ray start --head'"
        ) from None


def check_run_dir(run_dir: Path) -> None:
    """Create ``run_dir`` and prove it writable (a probe file), before Ray or any data."""
    probe = run_dir / f".write-probe-{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(
            f"--run-dir {run_dir}: cannot write there ({exc.strerror or exc}); give a writable "
            "--run-dir (the run directory holds manifest.json, trials.csv and every trial's "
            "outputs; on a cluster, a path every node can write, or --storage-path URI for "
            "Tune's storage)"
        ) from None


def _ray_init(
    address: str | None, ray_init_kwargs: dict[str, Any] | None, verbose: bool = False
) -> tuple[bool, float]:
    import ray

    if ray.is_initialized():
        return False, 0.0
    check_address(address)
    env = {
        "FER_STUDY_CACHE": os.environ.get("FER_STUDY_CACHE", ""),
        "RAY_CHDIR_TO_TRIAL_DIR": "0",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    env = {k: v for k, v in env.items() if v}
    env.update(pauses.env_vars())
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": verbose}
    if not verbose:
        import logging

        kwargs["logging_level"] = logging.ERROR
        kwargs["configure_logging"] = True
    if address:
        kwargs["address"] = address
    else:  # always a new local instance, never a stale /tmp/ray/ray_current_cluster
        kwargs.update({"address": "local", "include_dashboard": False})
    kwargs.update(ray_init_kwargs or {})
    t0 = time.time()
    pauses.pause("ray_init", block=False)
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:  # ray.init raises it for a refused token too
        raise ClusterAddressError(
            f"--address {address}: could not join the Ray cluster ({_first_line(exc)}); check "
            "the address 'ray start --head' printed, and on a cluster with token authentication "
            "(Ray's default for 'ray start') RAY_AUTH_MODE=token with the cluster's token in "
            "~/.ray/auth_token or RAY_AUTH_TOKEN (docs/cluster.md)"
        ) from None
    return True, time.time() - t0


def trial_gpus(
    spec: StudySpec, gpus_per_trial: float | None, cpu_only: bool
) -> tuple[float, str | None]:
    """GPUs per trial, and what ``--cpu-only`` changed when the study asked for GPUs."""
    asked = float(gpus_per_trial if gpus_per_trial is not None else spec.gpu)
    if not cpu_only or asked <= 0:
        return (0.0 if cpu_only else asked), None
    where = "--gpus-per-trial" if gpus_per_trial is not None else "resources.gpu"
    return 0.0, (
        f"--cpu-only: the study asks {asked:g} GPU per trial ({where}, profile {spec.profile}); "
        f"each trial runs on CPU with 0 GPUs and {spec.cpu:g} CPUs (resources.cpu unchanged)"
    )


def precheck_local(
    spec: StudySpec,
    *,
    gpus_per_trial: float | None = None,
    cpu_only: bool = False,
    trial_resources: dict[str, float] | None = None,
    ray_init_kwargs: dict[str, Any] | None = None,
) -> str | None:
    """The local resource check alone (no Ray, no data, no run directory), for ``fer-study
    run`` to call on the study loaded without its knob checks: an unsatisfiable request fails in
    about a second instead of after the trainer's imports. Returns the ``--cpu-only`` note."""
    gpu, note = trial_gpus(spec, gpus_per_trial, cpu_only)
    check_local(trial_request(spec.cpu, gpu, trial_resources), ray_init_kwargs)
    return note


def check_gpus(gpu: float) -> None:
    import ray

    have = ray.cluster_resources().get("GPU", 0)
    if gpu > 0 and have <= 0:
        raise NoGPUError(
            f"resources.gpu: the study asks for {gpu} GPU per trial but the Ray cluster has no "
            "GPU; run with --cpu-only (or --gpus-per-trial 0) to train on CPU"
        )


def default_concurrency(cpu: float, gpu: float) -> int:
    """Trials that fit on the cluster at once (so searchers are not asked far ahead of results)."""
    import ray

    res = ray.cluster_resources()
    fits = [res.get("CPU", 1) / cpu] if cpu > 0 else []
    if gpu > 0:
        fits.append(res.get("GPU", 0) / gpu)
    return max(1, int(min(fits) + 1e-9)) if fits else 1


def kfold_check(spec: StudySpec) -> int | None:
    """``trainer.kfold.k`` when the study's last stage runs k-fold (None otherwise), checked
    against the data before any trial starts (k >= 2, at most the smallest class's size)."""
    from fer_core.engine.build import build_data, compose, stage_configs
    from fer_core.engine.recipe import check_kfold, kfold_settings

    stages = stage_configs(compose(list(spec.base_overrides)))
    if stages[-1][1]["trainer"].get("protocol") != "kfold":
        return None
    kf = kfold_settings(stages)
    splits = build_data(stages[-1][1]["data"])
    labels = [splits.train.labels, splits.val.labels]
    import torch

    check_kfold(torch.cat(labels), kf.k, splits.num_classes)
    return kf.k


def make_scheduler(spec: StudySpec, folds: int | None = None):
    """none | asha | median on the reported ``epoch`` (stable across restarts; under k-fold it
    counts over folds, so ASHA's default ``max_t`` is epochs x folds)."""
    from ray.tune.schedulers import ASHAScheduler, MedianStoppingRule

    opts = {k: v for k, v in spec.scheduler.items() if k != "name"}
    name = spec.scheduler.get("name", "none")
    if name == "none":
        return None
    if name == "asha":
        max_t = int(opts.pop("max_t", (spec.epochs or 100) * (folds or 1)))
        return ASHAScheduler(time_attr="epoch", max_t=max_t, **opts)
    if name == "median":
        return MedianStoppingRule(time_attr="epoch", **opts)
    raise ValueError(f"scheduler.name: {name!r} is not allowed; use none, asha or median")


def describe_study(study, spec: StudySpec, manifest: dict[str, Any]) -> None:
    """What optuna-dashboard shows beside the trials: the objective's name (``val/acc (mean of
    3 seeds)``, not "Objective 0") and study attributes: paper, profile, study hash, command,
    git commit."""
    import warnings

    n = len(spec.seeds)
    with warnings.catch_warnings():  # set_metric_names is experimental in Optuna
        warnings.simplefilter("ignore")
        study.set_metric_names([f"{spec.metric} (mean of {n} seed{'s' if n > 1 else ''})"])
    attrs = {
        "paper": spec.plain().get("paper"),
        "description": spec.plain().get("description"),
        "profile": spec.profile,
        "study_hash": manifest.get("study_hash"),
        "command": " ".join(str(a) for a in manifest.get("command") or []),
        "git_commit": manifest.get("git_commit"),
        "seeds": list(spec.seeds),
    }
    for key, value in attrs.items():
        if value not in (None, "") and study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


class StoragePathError(ValueError):
    """``--storage-path`` is not a URI pyarrow's filesystems open."""


def tune_storage_path(run_dir: Path, storage_path: str | None) -> str:
    """Where Tune keeps ``attempt-<n>/``: ``RUN_DIR/tune``, or ``<URI>/<run dir name>/tune``
    for ``--storage-path URI``, whose scheme pyarrow must know (checked here, before Ray)."""
    if not storage_path:
        return str(run_dir / "tune")
    import pyarrow.fs

    uri = f"{storage_path.rstrip('/')}/{run_dir.name}/tune"
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        fs.create_dir(path, recursive=True)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise StoragePathError(
            f"--storage-path {storage_path}: {_first_line(exc)}; give a URI pyarrow's filesystems "
            "open (file:///shared/runs, s3://bucket/runs, gs://bucket/runs, hdfs://...) or a "
            "path every node of the cluster mounts"
        ) from None
    return uri


def _attempt(tune_storage: str) -> int:
    """The next ``attempt-<n>`` under Tune's storage (a local path or a pyarrow URI)."""
    import pyarrow.fs

    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(tune_storage)
    except Exception:  # noqa: BLE001 - a plain local path
        fs, path = pyarrow.fs.LocalFileSystem(), str(Path(tune_storage).resolve())
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    return 1 + sum(1 for i in infos if i.base_name.startswith("attempt-"))


def run_study(
    spec: StudySpec,
    run_dir: str | Path,
    *,
    storage: str | None = None,
    address: str | None = None,
    storage_path: str | None = None,
    trial_resources: dict[str, float] | None = None,
    gpus_per_trial: float | None = None,
    cpu_only: bool = False,
    resume: bool = False,
    train_fn: str | TrainFn = REAL_TRAIN_FN,
    data: bool | None = None,
    argv: list[str] | None = None,
    study_file: str | None = None,
    ray_init_kwargs: dict[str, Any] | None = None,
    progress_interval: float = 10.0,
    reuse_actors: bool = True,
    report_checkpoints: bool = True,
    hparams: bool | None = None,
    log: Callable[[str], None] | None = None,
    verbose: bool = False,
    keep_ray: bool = False,
) -> StudyResult:
    """Run (or, with ``resume``, continue) ``spec`` into ``run_dir``; see the module docstring.

    ``data``: prepare the data cache first (default: only for the real train function).
    ``hparams``: write an extra TensorBoard HParams record per trial (off by default: the
    trainer's logger already writes one into each trial's own event file).
    ``verbose``: Ray's own output (banners, checkpoint lines, worker output) as Ray prints it.
    ``keep_ray``: leave a local Ray session this call starts running, for a next run to join (the
    caller shuts it down); a run with nothing left to do starts none either way.
    ``storage_path``: Tune's storage (``tune/attempt-<n>``: experiment state, checkpoints, result
    logs) at a URI pyarrow's filesystems open (``s3://...``, ``gs://...``, ``file:///shared``);
    default ``RUN_DIR/tune``. ``trial_resources``: custom Ray resources per trial (``{"node_b":
    1}``), beside ``resources.cpu`` / ``resources.gpu``.

    Checked before any data or Ray (each fails within seconds, naming what to change): the run
    directory is writable, the storage opens (URL and server message with the password masked),
    ``--address`` answers, ``--storage-path`` has a known scheme, and some node can run one trial
    (``resources.py``).
    """
    log = log or (lambda msg: print(msg, flush=True))
    run_dir = Path(run_dir).resolve()
    t_start = time.time()
    if resume:
        changed = study_changes(run_dir, spec)
        if changed:
            raise StudyChangedError(
                f"{run_dir}: the study changed since this run started, so --resume is refused:\n  "
                + "\n  ".join(changed)
                + "\nrun it with --new for a fresh run directory, or restore the study file"
            )
    check_run_dir(run_dir)
    gpu, note = trial_gpus(spec, gpus_per_trial, cpu_only)
    if note:
        log(note)
    request = trial_request(spec.cpu, gpu, trial_resources)
    quiet_ray(verbose)
    import ray

    started, ray_init_s, checked = False, 0.0, False
    if address or ray.is_initialized():
        # an existing cluster: joined and checked now, so a request no node can meet fails
        # before anything is written (the corrected command then runs into the same --run-dir)
        started, ray_init_s = _ray_init(address, ray_init_kwargs, verbose)
        try:
            check_gpus(gpu)
            check_cluster(request, address)
        except BaseException:
            if started and not keep_ray:
                ray.shutdown()
            raise
        checked = True
    else:
        check_local(request, ray_init_kwargs)
    try:  # a cluster joined above is left when anything below fails
        tune_storage = tune_storage_path(run_dir, storage_path)
        storage_url = storage or default_storage_url(run_dir)
        dists = to_distributions(spec)
        study = open_study(spec, storage_url, dists)  # a bad --storage fails here, before data
        write_study_yaml(run_dir, spec)

        data_hash, folds = None, None
        if data if data is not None else train_fn == REAL_TRAIN_FN:
            t0 = time.time()
            data_hash = prepare_data(spec)
            folds = kfold_check(spec)
            log(f"data ready ({spec.dataset}, hash {data_hash}) in {time.time() - t0:.1f}s")
        manifest = write_manifest(
            run_dir,
            spec,
            mask_url(storage_url),
            data_hash,
            [mask_text(str(a), storage_url) for a in (argv if argv is not None else sys.argv)],
            {
                "resources": {"cpu": spec.cpu, "gpu": gpu, **(trial_resources or {})},
                "address": address,
                "storage_path": tune_storage,
            },
        )

        # Tune snapshots its state at every checkpoint when num_to_keep is set; that is wanted here.
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        quiet_ray(verbose)
        import ray
        from ray import tune
        from ray.tune.error import TuneError
        from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

        from fer_core.tune.searcher import SeedGroupSearcher

        # The Optuna storage and trials.csv are reconciled before Ray starts: a finished study
        # resumed has nothing left and returns without starting a local Ray.
        describe_study(study, spec, manifest)
        book = ResultBook(run_dir / "trials.csv")
        searcher = SeedGroupSearcher(
            study,
            dists,
            conditions(spec),
            spec.seeds,
            num_configs(spec, dists),
            spec.metric,
            spec.mode,
            book,
            run_dir,
            meta={"profile": spec.profile, "dataset": spec.dataset},
        )
        total = searcher.n_configs * len(spec.seeds)
        if not searcher.queue and searcher.asked >= searcher.n_configs:
            book.write()
            log(f"study {spec.study_name}: all {total} trials are finished; nothing to run")
            if started and not keep_ray:
                ray.shutdown()
            return StudyResult(
                run_dir,
                book.counts(),
                best_so_far(book, spec.metric, spec.mode),
                time.time() - t_start,
                0.0,
                False,
            )
    except BaseException:
        if started and not keep_ray:
            ray.shutdown()
        raise
    if not checked:
        started, ray_init_s = _ray_init(address, ray_init_kwargs, verbose)
    try:
        if not checked:
            check_gpus(gpu)
            check_cluster(request, address)
        log(
            f"study {spec.study_name}: {searcher.n_configs} configurations x {len(spec.seeds)} "
            f"seeds, storage {mask_url(storage_url)}"
            + (f", ray.init {ray_init_s:.1f}s" if started else "")
        )
        trainable = make_trainable(
            train_fn,
            run_dir,
            spec.base_overrides,
            spec.metric,
            spec.ablation_rows,
            report_checkpoints=report_checkpoints,
            hparams=bool(hparams),
            mode=spec.mode,
        )
        progress = ProgressCallback(book, spec.metric, spec.mode, total, progress_interval)
        tuner = tune.Tuner(
            tune.with_resources(
                trainable, {"cpu": spec.cpu, "gpu": gpu, **(trial_resources or {})}
            ),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=make_scheduler(spec, folds),
                metric=spec.metric,
                mode=spec.mode,
                num_samples=-1,
                max_concurrent_trials=spec.max_concurrent or default_concurrency(spec.cpu, gpu),
                reuse_actors=reuse_actors,
                trial_name_creator=tune_trial_name,
                trial_dirname_creator=tune_trial_name,
            ),
            run_config=tune.RunConfig(
                name=f"attempt-{_attempt(tune_storage)}",
                storage_path=tune_storage,
                failure_config=tune.FailureConfig(max_failures=spec.max_retries),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                # Ray's JSON/CSV result logs under tune/ stay; its TensorBoard copies do not
                # (TUNE_DISABLE_AUTO_CALLBACK_LOGGERS, quiet_ray): one run per trial.
                callbacks=[progress, JsonLoggerCallback(), CSVLoggerCallback()],
                verbose=0,
            ),
        )
        interrupted = False
        try:
            tuner.fit()
        except KeyboardInterrupt:
            interrupted = True
        except TuneError as exc:  # never a traceback: say what happened and what was kept
            interrupted = True
            log(f"Ray Tune stopped the study: {_first_line(exc)}")
        progress.close()
        pauses.pause("tail")
        unfinished = searcher.queue or searcher.live or searcher.asked < searcher.n_configs
        interrupted = interrupted or bool(unfinished)
        book.write()
        best = best_so_far(book, spec.metric, spec.mode)
        result = StudyResult(
            run_dir, book.counts(), best, time.time() - t_start, ray_init_s, interrupted
        )
        if interrupted:
            c = result.counts
            log(
                f"kept: {c['TERMINATED'] + c['PRUNED'] + c['ERROR']} of {total} trials finished "
                f"in {run_dir / 'trials.csv'}; unfinished ones continue from their checkpoints"
            )
            log(resume_hint(run_dir, study_file))
        else:
            c = result.counts
            log(
                f"done: {c['TERMINATED']} terminated, {c['PRUNED']} pruned, {c['ERROR']} errored "
                f"in {result.wall_s:.1f}s; results in {run_dir / 'trials.csv'}"
            )
        return result
    finally:
        if started and not keep_ray:
            ray.shutdown()


def tune_trial_name(trial) -> str:
    """Ray's name for a trial = its directory under ``trials/`` (``c0004_threshold-0.0_s1``),
    so Ray's messages and ``tune/attempt-<n>/`` use the one numbering."""
    cfg = getattr(trial, "config", None) or {}
    if "config_id" in cfg and "seed" in cfg:
        return trial_dirname(cfg["config_id"], cfg["seed"], cfg.get("params"))
    return str(getattr(trial, "trial_id", "trial"))


def _first_line(exc: BaseException) -> str:
    """The innermost cause's message, on one line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def new_run_dir(base: Path) -> Path:
    """The first free numbered sibling ``<base>-2``, ``<base>-3``, ... (``--new``)."""
    n = 2
    while Path(f"{base}-{n}").exists():
        n += 1
    return Path(f"{base}-{n}")


def default_run_dir(spec: StudySpec, root: Path | None = None) -> Path:
    return Path(root or Path.cwd() / "runs") / spec.study_name


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: fer-study run FILE")
