"""The Ray Tune trainable: one (configuration, seed) trained by a *train function*.

A train function has the signature of the trainer's entry point (API.md, engine)::

    train_fn(overrides: list[str], trial_dir: Path, on_epoch_end, resume: Path | None)
        -> dict[str, float]          # last epoch + best val + test/* metrics

``train_recipe`` (the real path) composes the Hydra config and calls ``run_recipe``; the trainable
reports every epoch of the last stage to Ray Tune through the trainer's ``on_epoch_end`` callback
(no second training loop), with the epoch's checkpoint, so ASHA/median stopping and restore work.
``synthetic_train`` is a deterministic stand-in with a known optimum and a configurable epoch time
for the Ray/Optuna plumbing tests and the overhead benchmark.

Restart: a trial that starts again (``failure.max_retries`` or ``fer-study run --resume``) resumes
from Tune's checkpoint, else from ``trials/<key>/checkpoints/`` of its stable trial directory.
A NaN ``train/loss`` raises ``FloatingPointError``, so the trial is recorded as errored.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fer_core.tune.results import RESULT_FILE, trial_key, write_json_atomic

OnEpochEnd = Callable[[str, int, dict, "Path | None"], bool]
TrainFn = Callable[[list, Path, OnEpochEnd, "Path | None"], dict]
SEED_KNOB = "trainer.seed"
SELECT_KNOB = "trainer.select_metric"
#: A train function may set this key in an epoch's metrics to mark the run's last epoch; the
#: trainable then reports that epoch after the train function returned (with test/* added), so a
#: scheduler stopping the trial at ``max_t`` cannot cut the final test pass.
FINAL_EPOCH = "_final_epoch"
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
    """The real path: ``engine.build.compose`` + ``engine.recipe.run_recipe``."""
    from fer_core.engine.build import compose
    from fer_core.engine.recipe import run_recipe

    cfg = compose(list(overrides))
    stages = cfg.get("stages") if hasattr(cfg, "get") else None
    last = list(stages.keys())[-1] if stages else None
    epochs = _stage_epochs(cfg, last)

    def callback(stage: str, epoch: int, metrics: dict, checkpoint_dir: Path | None) -> bool:
        # Only the last stage reports the study metric (INTERFACES.md "Trainer callback").
        if last is not None and stage != last:
            return True
        flag = {FINAL_EPOCH: True} if epochs is not None and int(epoch) + 1 >= epochs else {}
        return on_epoch_end(stage, epoch, {**metrics, **flag}, checkpoint_dir)

    result = run_recipe(cfg, Path(trial_dir), on_epoch_end=callback, resume=resume)
    return dict(result.metrics)


def _stage_epochs(cfg: Any, stage: str | None) -> int | None:
    """``trainer.epochs`` of the last stage (or of the run), None if the config has none."""
    try:
        node = cfg.stages[stage] if stage is not None else cfg
        trainer = node.get("trainer") or cfg.get("trainer")
        return int(trainer.get("epochs")) if trainer is not None and trainer.get("epochs") else None
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _parse(overrides: list[str]) -> dict[str, str]:
    return dict(o.split("=", 1) for o in overrides if "=" in o)


def synthetic_train(
    overrides: list[str], trial_dir: Path, on_epoch_end: OnEpochEnd, resume: Path | None
) -> dict[str, float]:
    """A fake trainer with a known answer (tests, benchmarks; no torch).

    Knobs (trainer overrides): ``trainer.epochs`` (3), ``trainer.seed``, ``synthetic.epoch_s``
    (sleep per epoch, 0), ``synthetic.fail`` (raise at that epoch), ``synthetic.nan`` (NaN loss at
    that epoch). ``val/acc`` rises toward ``0.9 - sum((x - 0.5)^2)`` over the numeric knobs named
    ``synthetic.x*`` (and ``row`` settings), plus a seed-dependent offset of +-0.005.
    Writes ``checkpoints/last.pt`` (JSON) every epoch and resumes from it, and ``synthetic.json``
    (start/end time, ``CUDA_VISIBLE_DEVICES``) at the end.
    """
    t_start = time.time()
    kv = _parse(overrides)
    epochs = int(kv.get("trainer.epochs", 3))
    seed = int(kv.get(SEED_KNOB, 0))
    epoch_s = float(kv.get("synthetic.epoch_s", 0))
    fail_at = int(kv.get("synthetic.fail", -1))
    nan_at = int(kv.get("synthetic.nan", -1))
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
        if epoch == fail_at:
            raise RuntimeError(f"synthetic failure at epoch {epoch}")
        acc = peak * (1 - math.exp(-(epoch + 1) / 1.5))
        loss = float("nan") if epoch == nan_at else 1.0 - acc
        metrics = {"train/loss": loss, "val/acc": acc, "val/uar": acc - 0.01}
        (ckpt_dir / "last.pt").write_text(json.dumps({"epoch": epoch, "metrics": metrics}))
        if not on_epoch_end(
            "train", epoch, {**metrics, FINAL_EPOCH: epoch == epochs - 1}, ckpt_dir
        ):
            break
    (Path(trial_dir) / "synthetic.json").write_text(
        json.dumps(
            {"start": t_start, "end": time.time(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}
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
) -> Callable[[dict], None]:
    """A Ray Tune function trainable for one (configuration, seed).

    ``config`` (from the searcher): ``config_id``, ``seed``, ``optuna_trial``, ``params``
    (knob path -> value). The trainer's run directory is ``<run_dir>/trials/<key>``; when the
    train function returns, the trainable writes ``result.json`` there (absent = stopped early).
    """
    run_dir = Path(run_dir).resolve()
    base = list(base_overrides)

    def fer_trial(config: dict) -> None:
        from ray import tune

        fn = load_train_fn(train_fn)
        cid, seed = int(config["config_id"]), int(config["seed"])
        tdir = run_dir / "trials" / trial_key(cid, seed)
        tdir.mkdir(parents=True, exist_ok=True)
        (tdir / RESULT_FILE).unlink(missing_ok=True)
        resume: Path | None = None
        ck = tune.get_checkpoint()
        if ck is not None:
            resume = Path(ck.to_directory())
        elif (tdir / "checkpoints" / "last.pt").is_file():
            resume = tdir / "checkpoints"
        overrides = trial_overrides(base, dict(config.get("params", {})), seed, rows)
        if not any(o.startswith(SELECT_KNOB + "=") for o in overrides):
            # best checkpoint and test/* selected on the study's metric (like best.<metric>)
            overrides.insert(len(base), f"{SELECT_KNOB}={metric}")
        history: list[dict[str, Any]] = []
        t0 = time.time()

        last_epoch: dict[str, Any] = {}

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
            history.append(rec)
            if is_last:  # reported after the trainer returns, so no scheduler cuts its test pass
                last_epoch.update(rec=rec, ckpt=checkpoint_dir)
                return True
            tune.report(rec, checkpoint=_checkpoint(checkpoint_dir))
            return True

        def _checkpoint(checkpoint_dir: Path | None):
            if report_checkpoints and checkpoint_dir is not None and Path(checkpoint_dir).is_dir():
                return tune.Checkpoint.from_directory(str(checkpoint_dir))
            return None

        (tdir / "error.txt").unlink(missing_ok=True)
        try:
            final = fn(overrides, tdir, on_epoch_end, resume)
        except Exception as exc:
            (tdir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
            raise
        if hparams:
            try:
                write_hparams(tdir, dict(config.get("params", {})), seed, final or {})
            except Exception:  # noqa: BLE001 - a log must never fail a finished trial
                pass
        write_json_atomic(
            tdir / RESULT_FILE,
            {
                "metrics": {k: float(v) for k, v in (final or {}).items() if _num(v)},
                "history": history,
                "wall_s": time.time() - t0,
                "overrides": overrides,
                "resumed_from": str(resume) if resume else None,
            },
        )
        if last_epoch:
            rec = dict(last_epoch["rec"])
            rec.update({k: float(v) for k, v in (final or {}).items() if k.startswith("test/")})
            tune.report(rec, checkpoint=_checkpoint(last_epoch["ckpt"]))

    return fer_trial


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
