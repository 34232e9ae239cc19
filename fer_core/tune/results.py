"""``trials.csv``: one row per (configuration, seed), rewritten atomically after each change.

Columns (INTERFACES.md): ``config_id, seed, tune_trial_id, optuna_trial, profile, dataset, row,
status, error, wall_s, epochs, param.<path>..., final.<metric>..., best.<metric>...``, plus
``trial_dir`` (the trainer run directory under ``trials/``, relative to the run directory).
``final.*`` are last-epoch values, ``best.*`` the values at the best-validation epoch; ``test/*``
come from the best-validation checkpoint and are written as ``best.test/*``. Under
``trainer.protocol=kfold`` each fold's values are ``final.fold<i>/*`` / ``best.fold<i>/*`` and the
plain columns hold the mean over folds, with ``*_std`` beside them (``summarise_history``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import statistics
import tempfile
from pathlib import Path
from typing import Any

from fer_core.trials_csv import BASE_COLUMNS as BASE_COLUMNS_CSV
from fer_core.trials_csv import STATUSES

BASE_COLUMNS = list(BASE_COLUMNS_CSV)
EXTRA_COLUMNS = ["trial_dir"]
FINISHED = ("TERMINATED", "PRUNED", "ERROR")
RESULT_FILE = "result.json"  # written by the trainable in the trial directory when it finishes


def is_started(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` already holds a study run (then ``fer-study run`` needs ``--resume``)."""
    return any((Path(run_dir) / f).exists() for f in ("trials.csv", "study.yaml", "optuna.db"))


def trial_key(config_id: int, seed: int) -> str:
    """Stable trial id ``c0004-s1`` (the same across ``--resume``, unlike Tune's trial ids): the
    pause points' and messages' name; the directory adds the setting (:func:`trial_dirname`)."""
    return f"c{int(config_id):04d}-s{int(seed)}"


MAX_DIRNAME = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DIRNAME = re.compile(r"^c(\d+)(?:_.*)?_s(-?\d+)$")


def setting_label(params: dict[str, Any] | None) -> str:
    """A configuration's setting in short, file-system- and Hydra-safe form (no ``=``, ``,``
    or spaces): ``threshold-0.0``, ``lr-0.001_warmup_epochs-2``, an ablation row's name."""
    from fer_core.overrides import override_value

    params = dict(params or {})
    shorts = [k.split(".")[-1] for k in params]
    parts = []
    for (k, v), short in zip(params.items(), shorts):
        if k == "row":
            parts.append(str(v))
            continue
        if shorts.count(short) > 1:  # decoder.enabled vs uniform.enabled
            short = "-".join(k.split(".")[-2:])
        parts.append(f"{short}-{override_value(v)}")
    return re.sub(r"-{2,}", "-", _UNSAFE.sub("-", "_".join(parts))).strip("-_")


def trial_dirname(config_id: int, seed: int, params: dict[str, Any] | None = None) -> str:
    """``trials/<this>``: ``c0004_threshold-0.0_s1`` (config id, setting, seed; at most 64
    characters, the setting cut short first)."""
    head, tail = f"c{int(config_id):04d}", f"_s{int(seed)}"
    label = setting_label(params)[: MAX_DIRNAME - len(head) - len(tail) - 1].rstrip("-_.")
    return f"{head}_{label}{tail}" if label else f"{head}{tail}"


def key_of_dirname(name: str) -> str:
    """``c0004_threshold-0.0_s1`` -> ``c0004-s1`` (:func:`trial_key`); other names unchanged."""
    m = _DIRNAME.match(str(name))
    return trial_key(int(m.group(1)), int(m.group(2))) if m else str(name)


def is_metric(key: str) -> bool:
    return "/" in key and not key.startswith(("config/", "param/"))


def summarise_history(history: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any]:
    """``final.*`` (last epoch) and ``best.*`` (best epoch of ``metric``) from per-epoch results.

    k-fold (records carry ``fold``): each fold is summarised on its own and written as
    ``final.fold<i>/<metric>`` / ``best.fold<i>/<metric>``; ``final.*`` and ``best.*`` are then
    the mean over folds and ``*_std`` their standard deviation (ddof=1), so ``best.<metric>`` (what
    the searcher is told) is the mean over folds of each fold's best epoch.
    """
    folds = sorted({int(h["fold"]) for h in history if _is_num(h.get("fold"))})
    if not folds:
        return _summarise(history, metric, mode)
    per = {f: _summarise([h for h in history if h.get("fold") == f], metric, mode) for f in folds}
    out: dict[str, Any] = {}
    for f, cols in per.items():
        for col, v in cols.items():
            kind, name = col.split(".", 1)
            out[f"{kind}.fold{f}/{name}"] = v
    for col in sorted({c for cols in per.values() for c in cols}):
        vals = [cols[col] for cols in per.values() if col in cols]
        out[col] = statistics.fmean(vals)
        if len(vals) > 1:
            out[f"{col}_std"] = statistics.stdev(vals)
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _summarise(history: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not history:
        return out
    last = history[-1]
    for k, v in last.items():
        if is_metric(k) and _is_num(v):
            out[f"final.{k}"] = float(v)
    scored = [h for h in history if _is_num(h.get(metric)) and not math.isnan(float(h[metric]))]
    if scored:
        pick = max if mode == "max" else min
        best = pick(scored, key=lambda h: float(h[metric]))
        for k, v in best.items():
            if is_metric(k) and _is_num(v):
                out[f"best.{k}"] = float(v)
    return out


class ResultBook:
    """The rows of ``trials.csv`` keyed by ``(config_id, seed)``; every change rewrites the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: dict[tuple[int, int], dict[str, Any]] = {}
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as fh:
                for row in csv.DictReader(fh):
                    key = (int(row["config_id"]), int(row["seed"]))
                    self.rows[key] = {k: v for k, v in row.items() if v not in ("", None)}

    def get(self, config_id: int, seed: int) -> dict[str, Any] | None:
        return self.rows.get((int(config_id), int(seed)))

    def status(self, config_id: int, seed: int) -> str | None:
        row = self.get(config_id, seed)
        return row.get("status") if row else None

    def is_finished(self, config_id: int, seed: int) -> bool:
        return self.status(config_id, seed) in FINISHED

    def update(self, config_id: int, seed: int, write: bool = True, **fields: Any) -> None:
        row = self.rows.setdefault(
            (int(config_id), int(seed)), {"config_id": int(config_id), "seed": int(seed)}
        )
        row.update({k: v for k, v in fields.items() if v is not None})
        if write:
            self.write()

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for row in self.rows.values():
            out[row.get("status", "PENDING")] = out.get(row.get("status", "PENDING"), 0) + 1
        return out

    def columns(self) -> list[str]:
        keys: set[str] = set()
        for row in self.rows.values():
            keys.update(row)
        params = sorted(k for k in keys if k.startswith("param."))
        final = sorted(k for k in keys if k.startswith("final."))
        best = sorted(k for k in keys if k.startswith("best."))
        known = set(BASE_COLUMNS) | set(EXTRA_COLUMNS) | set(params) | set(final) | set(best)
        other = sorted(keys - known)
        return BASE_COLUMNS + params + final + best + EXTRA_COLUMNS + other

    def write(self) -> None:
        """Write to a temporary file in the same folder and rename it over ``trials.csv``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cols = self.columns()
        fd, tmp = tempfile.mkstemp(prefix=".trials-", suffix=".csv", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
                w.writeheader()
                for key in sorted(self.rows):
                    w.writerow(self.rows[key])
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def read_trial_result(trial_dir: Path) -> dict[str, Any] | None:
    """The trainable's ``result.json`` (metrics, history, wall_s) if the trial finished."""
    path = Path(trial_dir) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def write_json_atomic(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
    os.replace(tmp, path)
