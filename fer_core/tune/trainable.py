"""The Ray Tune trainable: one (configuration, seed) trained by a *train function*.

A train function has the signature of the trainer's entry point (API.md, engine)::

    train_fn(overrides: list[str], trial_dir: Path, on_epoch_end, resume: Path | None)
        -> dict[str, float]          # last epoch + best val + test/* metrics

``train_recipe`` (the real path) composes the Hydra config and calls ``run_recipe``; the trainable
reports every epoch of the last stage to Ray Tune through the trainer's ``on_epoch_end`` callback
(no second training loop), so ASHA/median stopping and restore work. A report carries a Tune
checkpoint only on the epochs whose ``last.pt`` the trainer wrote (every ``trainer.save_every``
epochs and the last; the callback gets ``checkpoint_dir=None`` on the others): Tune copies only
what resume needs, with no second knob.
``synthetic_train`` is a deterministic stand-in with a known optimum and a configurable epoch time
for the Ray/Optuna plumbing tests and the overhead benchmark.

Restart: a trial that starts again (``failure.max_retries`` or ``fer-study run --resume``) resumes
from Tune's checkpoint, else from its stable trial directory (``trials/<key>/checkpoints/``, or its
``fold_<i>/`` runs under k-fold); ``reported.json`` there keeps the epochs it reported before,
so ``result.json``'s history is complete. A NaN ``train/loss`` raises ``FloatingPointError``, so the
trial is recorded as errored.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fer_core.tune.pauses import pause
from fer_core.tune.results import (
    RESULT_FILE,
    key_of_dirname,
    summarise_history,
    trial_dirname,
    trial_key,
    write_json_atomic,
)

OnEpochEnd = Callable[[str, int, dict, "Path | None"], bool]
TrainFn = Callable[[list, Path, OnEpochEnd, "Path | None"], dict]
SEED_KNOB = "trainer.seed"
SELECT_KNOB = "trainer.select_metric"
#: A train function may set this key in an epoch's metrics to mark the run's last epoch; the
#: trainable then reports that epoch after the train function returned (with test/* added), so a
#: scheduler stopping the trial at ``max_t`` cannot cut the final test pass.
FINAL_EPOCH = "_final_epoch"
REPORTED_FILE = "reported.json"  # the trial's epoch records, kept across restarts (RecordBook)
REAL_TRAIN_FN = "fer_core.tune.trainable:train_recipe"
SYNTHETIC_TRAIN_FN = "fer_core.tune.trainable:synthetic_train"


def load_train_fn(spec: str | TrainFn) -> TrainFn:
    """``"module:function"`` -> the function (callables pass through)."""
    if callable(spec):
        return spec
    module, _, name = str(spec).partition(":")
    if not name:
        raise ValueError(f"train function {spec!r}: use the form 'module:function'")
    return getattr(importlib.import_module(module), name)


def trial_overrides(
    base: list[str],
    params: dict[str, Any],
    seed: int,
    rows: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """Trainer overrides of one trial: study base, searched knobs (or the ablation row), seed."""
    from fer_core.tune.spec import to_overrides

    out = list(base)
    for key, value in params.items():
        if key == "row" and rows is not None:
            out += to_overrides(rows[value])
        else:
            out += to_overrides({key: value})
    out.append(f"{SEED_KNOB}={int(seed)}")
    return out


# ---------------------------------------------------------------- train functions


def train_recipe(
    overrides: list[str], trial_dir: Path, on_epoch_end: OnEpochEnd, resume: Path | None
) -> dict[str, float]:
    """The real path: ``engine.build.compose`` + ``engine.recipe.run_recipe``.

    Only the last stage reports (INTERFACES.md "Trainer callback"). Under k-fold its epochs are
    numbered across folds (fold i's epoch e is ``i * epochs + e``) and keep their ``fold<i>/``
    stage prefix, so a scheduler's time moves forward and the trainable can tell the folds apart.
    """
    from fer_core.engine.build import compose
    from fer_core.engine.recipe import run_recipe

    cfg = compose(list(overrides))
    stages = cfg.get("stages") if hasattr(cfg, "get") else None
    last = list(stages.keys())[-1] if stages else None
    epochs = _stage_epochs(cfg, last)
    folds = _kfold_k(cfg, last)
    total = epochs * folds if epochs is not None and folds else epochs

    def callback(stage: str, epoch: int, metrics: dict, checkpoint_dir: Path | None) -> bool:
        fold, name = split_fold(stage)
        if last is not None and name != last:
            return True  # progress of an earlier stage
        if fold is not None and epochs is not None:
            epoch = fold * epochs + int(epoch)
        flag = {FINAL_EPOCH: True} if total is not None and int(epoch) + 1 >= total else {}
        return on_epoch_end(stage, epoch, {**metrics, **flag}, checkpoint_dir)

    result = run_recipe(cfg, Path(trial_dir), on_epoch_end=callback, resume=resume)
    return dict(result.metrics)


def split_fold(stage: str) -> tuple[int | None, str]:
    """``"fold2/finetune"`` -> ``(2, "finetune")``; a stage without a fold -> ``(None, stage)``."""
    m = _FOLD_STAGE.match(str(stage))
    return (int(m.group(1)), m.group(2)) if m else (None, str(stage))


_FOLD_STAGE = re.compile(r"^fold(\d+)/(.+)$")


def _stage_node(cfg: Any, stage: str | None) -> Any:
    node = cfg.stages[stage] if stage is not None else cfg
    return node.get("trainer") or cfg.get("trainer")


def _stage_epochs(cfg: Any, stage: str | None) -> int | None:
    """``trainer.epochs`` of the last stage (or of the run), None if the config has none."""
    try:
        trainer = _stage_node(cfg, stage)
        return int(trainer.get("epochs")) if trainer is not None and trainer.get("epochs") else None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _kfold_k(cfg: Any, stage: str | None) -> int | None:
    """``trainer.kfold.k`` when the last stage's protocol is kfold, else None."""
    try:
        trainer = _stage_node(cfg, stage)
        if trainer.get("protocol") != "kfold":
            return None
        return int(trainer.get("kfold").get("k"))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _parse(overrides: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in overrides if "=" in o)


def _record_node(trial_dir: Path) -> str | None:
    """Append this start's Ray node id and raylet pid (a Ray worker's parent) to
    ``nodes.jsonl`` in the trial directory: where each attempt of a trial ran (multi-node tests)."""
    ray = sys.modules.get("ray")
    node = ray.get_runtime_context().get_node_id() if ray and ray.is_initialized() else None
    Path(trial_dir).mkdir(parents=True, exist_ok=True)
    with (Path(trial_dir) / "nodes.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"node_id": node, "raylet_pid": os.getppid()}) + "\n")
    return node


def synthetic_train(
    overrides: list[str], trial_dir: Path, on_epoch_end: OnEpochEnd, resume: Path | None
) -> dict[str, float]:
    """A fake trainer with a known answer (tests, benchmarks; no torch).

    Knobs (trainer overrides): ``trainer.epochs`` (3), ``trainer.seed``, ``trainer.save_every``
    (1: write ``checkpoints/last.pt`` every N epochs and after the last), ``synthetic.epoch_s``
    (sleep per epoch, 0), ``synthetic.fail`` (raise at that epoch), ``synthetic.nan`` (NaN loss at
    that epoch). ``val/acc`` rises toward ``0.9 - sum((x - 0.5)^2)`` over the numeric knobs named
    ``synthetic.x*`` (and ``row`` settings), plus a seed-dependent offset of +-0.005.
    Writes ``checkpoints/last.pt`` (JSON) and resumes from it, ``nodes.jsonl`` (one
    line per start: Ray node id, raylet pid) and ``synthetic.json`` (start/end time,
    ``CUDA_VISIBLE_DEVICES``, node id) at the end.
    """
    t_start = time.time()
    node = _record_node(trial_dir)
    kv = _parse(overrides)
    epochs = int(kv.get("trainer.epochs", 3))
    seed = int(kv.get(SEED_KNOB, 0))
    epoch_s = float(kv.get("synthetic.epoch_s", 0))
    fail_at = int(kv.get("synthetic.fail", -1))
    nan_at = int(kv.get("synthetic.nan", -1))
    save_every = max(1, int(kv.get("trainer.save_every", 1)))
    xs = [float(v) for k, v in kv.items() if k.startswith("synthetic.x")]
    peak = 0.9 - sum((x - 0.5) ** 2 for x in xs) + 0.005 * math.sin(seed + 1)
    ckpt_dir = Path(trial_dir) / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    start = 0
    metrics: dict[str, float] = {}
    if resume is not None and (Path(resume) / "last.pt").is_file():
        state = json.loads((Path(resume) / "last.pt").read_text())
        start, metrics = state["epoch"] + 1, state.get("metrics", {})
    for epoch in range(start, epochs):
        if epoch_s:
            time.sleep(epoch_s)
        pause(f"mid_epoch:{key_of_dirname(Path(trial_dir).name)}:{epoch + 1}")
        if epoch == fail_at:
            raise RuntimeError(f"synthetic failure at epoch {epoch}")
        acc = peak * (1 - math.exp(-(epoch + 1) / 1.5))
        loss = float("nan") if epoch == nan_at else 1.0 - acc
        metrics = {"train/loss": loss, "val/acc": acc, "val/uar": acc - 0.01}
        saved = (epoch + 1) % save_every == 0 or epoch == epochs - 1
        if saved:
            (ckpt_dir / "last.pt").write_text(json.dumps({"epoch": epoch, "metrics": metrics}))
        if not on_epoch_end(
            "train",
            epoch,
            {**metrics, FINAL_EPOCH: epoch == epochs - 1},
            ckpt_dir if saved else None,
        ):
            break
    (Path(trial_dir) / "synthetic.json").write_text(
        json.dumps(
            {
                "start": t_start,
                "end": time.time(),
                "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "node_id": node,
            }
        )
    )
    out = dict(metrics)
    out.update({"test/acc": metrics.get("val/acc", 0.0) - 0.02, "test/uar": peak - 0.05})
    return out


# ---------------------------------------------------------------- the Tune trainable


def make_trainable(
    train_fn: str | TrainFn,
    run_dir: Path,
    base_overrides: list[str],
    metric: str,
    rows: dict[str, dict[str, Any]] | None = None,
    report_checkpoints: bool = True,
    hparams: bool = True,
    mode: str = "max",
) -> Callable[[dict], None]:
    """A Ray Tune function trainable for one (configuration, seed).

    ``config`` (from the searcher): ``config_id``, ``seed``, ``optuna_trial``, ``params``
    (knob path -> value). The trainer's run directory is ``<run_dir>/trials/<key>``; when the
    train function returns, the trainable writes ``result.json`` there (absent = stopped early).
    Every result it reports carries ``metric`` (else the trial raises :class:`MissingMetricError`
    and errors alone: Tune would end the study). A trial restarted with nothing left to run
    reports its recorded last epoch once (``reported.json``), so it ends like an uninterrupted one.
    """
    run_dir = Path(run_dir).resolve()
    base = list(base_overrides)

    def fer_trial(config: dict) -> None:
        from ray import tune

        fn = load_train_fn(train_fn)
        cid, seed = int(config["config_id"]), int(config["seed"])
        key = trial_key(cid, seed)
        tdir = run_dir / "trials" / trial_dirname(cid, seed, config.get("params"))
        tdir.mkdir(parents=True, exist_ok=True)
        (tdir / RESULT_FILE).unlink(missing_ok=True)
        # Tune's checkpoint is the last epoch it accepted (a retry after a NaN epoch must not
        # start after it); a new attempt (--resume) has none and uses the trial directory.
        ck = tune.get_checkpoint()
        resume = Path(ck.to_directory()) if ck is not None else local_resume(tdir)
        overrides = trial_overrides(base, dict(config.get("params", {})), seed, rows)
        if not any(o.startswith(SELECT_KNOB + "=") for o in overrides):
            # best checkpoint and test/* selected on the study's metric (like best.<metric>)
            overrides.insert(len(base), f"{SELECT_KNOB}={metric}")
        # Every epoch reported so far, kept across restarts (a resumed trainer does not report
        # the epochs before its checkpoint again); a fresh start forgets earlier attempts.
        records = RecordBook(tdir / REPORTED_FILE, keep=resume is not None)
        t0 = time.time()
        deferred: dict[str, Any] = {}
        reported = [0]

        def require_metric(rec: dict) -> None:
            if metric not in rec:  # Tune would end the whole study on such a result
                raise MissingMetricError(
                    f"trial {key} produced no {metric!r} (it reported {sorted(rec)}); "
                    "check trainer.select_metric and the method's reported metrics"
                )

        def report(rec: dict, checkpoint_dir: Path | None) -> None:
            require_metric(rec)
            tune.report(rec, checkpoint=_checkpoint(checkpoint_dir))
            reported[0] += 1

        def on_epoch_end(stage: str, epoch: int, metrics: dict, checkpoint_dir: Path | None):
            metrics = dict(metrics)
            is_last = bool(metrics.pop(FINAL_EPOCH, False))
            loss = metrics.get("train/loss")
            if isinstance(loss, float) and math.isnan(loss):
                raise FloatingPointError(f"train/loss became NaN at {stage} epoch {epoch}")
            if metric not in metrics:
                return True  # progress of a stage without the study metric
            rec = {k: float(v) for k, v in metrics.items() if _num(v)}
            rec.update({"epoch": int(epoch) + 1, "stage": stage})
            fold, _ = split_fold(stage)
            if fold is not None:
                rec["fold"] = fold
            records.add(rec)
            pause(f"epoch:{key}:{rec['epoch']}")
            if deferred:  # an earlier last epoch (a train function that marks several)
                report(deferred.pop("rec"), deferred.pop("ckpt"))
            if is_last:  # reported after the trainer returns, so no scheduler cuts its test pass
                deferred.update(rec=rec, ckpt=checkpoint_dir)
                return True
            report(rec, checkpoint_dir)
            return True

        def _checkpoint(checkpoint_dir: Path | None):
            if report_checkpoints and checkpoint_dir is not None and Path(checkpoint_dir).is_dir():
                return tune.Checkpoint.from_directory(str(checkpoint_dir))
            return None

        (tdir / "error.txt").unlink(missing_ok=True)
        try:
            final = {k: float(v) for k, v in (fn(overrides, tdir, on_epoch_end, resume) or {}).items()
                     if _num(v)}  # fmt: skip
            history = records.history()
            last = {k: v for k, v in (history[-1] if history else {}).items()
                    if k not in ("epoch", "stage", "fold")}  # fmt: skip
            # A trainer resumed at its last epoch ran nothing and returns test/* only: its last
            # epoch comes from the record, so result.json matches an uninterrupted run.
            metrics = {**last, **final}
            if deferred:
                rec, ckpt = deferred["rec"], deferred["ckpt"]
            elif reported[0] == 0 and history:  # nothing left to run: report the record once
                rec, ckpt = dict(history[-1]), None
            elif reported[0] == 0 and metric in final:  # ... without a record: what it returned
                rec, ckpt = dict(final), None
            else:
                rec, ckpt = None, None
            if rec is not None:
                rec = final_record(rec, history, final, metric, mode)
                require_metric(rec)  # before result.json exists
            elif reported[0] == 0:
                raise MissingMetricError(
                    f"trial {key} finished without reporting {metric!r} (no epoch of its last "
                    "stage reported it); check trainer.select_metric and the method's metrics"
                )
            pause(f"trained:{key}")
        except Exception as exc:
            (tdir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
            raise
        if hparams:
            try:
                write_hparams(tdir, dict(config.get("params", {})), seed, metrics)
            except Exception:  # noqa: BLE001 - a log must never fail a finished trial
                pass
        write_json_atomic(
            tdir / RESULT_FILE,
            {
                "metrics": metrics,
                "history": history,
                "wall_s": time.time() - t0,
                "overrides": overrides,
                "resumed_from": str(resume) if resume else None,
            },
        )
        if rec is not None:
            report(rec, ckpt)

    return fer_trial


class MissingMetricError(RuntimeError):
    """A trial would report a result without the study metric (it becomes that trial's error)."""


def final_record(
    rec: dict, history: list[dict], final: dict, metric: str, mode: str
) -> dict[str, Any]:
    """The trial's last report to Tune: its last epoch plus ``test/*``. k-fold: the metrics are
    the mean over folds of each fold's best epoch (``summarise_history``), with ``*_std`` and
    each fold's value as ``fold<i>/<metric>``, so Tune sees what Optuna is told."""
    out = dict(rec)
    if any("fold" in h for h in history):
        out.pop("fold", None)
        for col, v in summarise_history(history, metric, mode).items():
            if col.startswith("best."):
                out[col[len("best.") :]] = v
        out.update({k: v for k, v in final.items() if "test/" in k or k.startswith("kfold/")})
    else:
        out.update({k: v for k, v in final.items() if k.startswith("test/")})
    return out


def local_resume(trial_dir: Path) -> Path | None:
    """What a restarted trial continues from in its own directory: ``checkpoints/`` (its
    ``last.pt``), or the directory itself when it holds k-fold runs (``fold_<i>/``), else None."""
    tdir = Path(trial_dir)
    if (tdir / "checkpoints" / "last.pt").is_file():
        return tdir / "checkpoints"
    if any(tdir.glob("fold_*/checkpoints/last.pt")) or any(tdir.glob("fold_*/metrics.json")):
        return tdir
    return None


class RecordBook:
    """``reported.json`` of a trial directory: every epoch record of the last stage, by epoch,
    rewritten atomically before the record goes to Tune (``keep=False`` starts it empty)."""

    def __init__(self, path: Path, keep: bool) -> None:
        self.path = Path(path)
        self.rows: dict[int, dict[str, Any]] = {}
        if keep and self.path.is_file():
            try:
                for r in json.loads(self.path.read_text(encoding="utf-8")).get("history", []):
                    self.rows[int(r["epoch"])] = r
            except (OSError, ValueError, KeyError, TypeError):
                self.rows = {}
        elif not keep:
            self.path.unlink(missing_ok=True)

    def add(self, rec: dict[str, Any]) -> None:
        # re-run epochs repeat exactly (loop.py), so the latest record of an epoch replaces it
        self.rows[int(rec["epoch"])] = dict(rec)
        self.rows = {e: r for e, r in self.rows.items() if e <= int(rec["epoch"])}
        write_json_atomic(self.path, {"history": self.history()})

    def history(self) -> list[dict[str, Any]]:
        return [self.rows[e] for e in sorted(self.rows)]


def write_hparams(trial_dir: Path, params: dict[str, Any], seed: int, metrics: dict) -> None:
    """A TensorBoard HParams record of the trial (``trials/<key>/hparams``): knobs and metrics.

    ``tensorboard --logdir RUN_DIR/trials`` then lists every trial in the HParams view.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # pragma: no cover - tensorboard is a dependency
        return
    hp = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in params.items()}
    hp["seed"] = int(seed)
    mets = {f"hparam/{k}": float(v) for k, v in metrics.items() if _num(v)}
    with SummaryWriter(log_dir=str(Path(trial_dir) / "hparams")) as writer:
        writer.add_hparams(hp, mets, run_name=".")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
