"""A Ray Tune searcher on Optuna's ask/tell API, with seed groups and the storage as truth.

Why not ``OptunaSearch``: resuming a killed study with an RDB storage crashes
(``UpdateFinishedTrialError``, PITFALLS.md) because Tune's pickled searcher state is older than the
storage. Here the Optuna storage is the only searcher state: a resumed run reads it, keeps every
finished Optuna trial, finishes the RUNNING ones (their missing seeds run again) and never tells a
trial twice.

Seed groups (INTERFACES.md): one Optuna trial per configuration (``config_id`` = its number), one
Tune trial per (configuration, seed). When every seed has finished, the Optuna trial is told the
mean over seeds of the metric at each seed's best-validation epoch; PRUNED (with that mean as its
last intermediate value) if a scheduler stopped any seed, FAIL if any seed errored.
"""

from __future__ import annotations

import math
import re
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState
from ray.tune.search import Searcher

from fer_core.tune.pauses import pause
from fer_core.tune.results import (
    FINISHED,
    ResultBook,
    read_trial_result,
    summarise_history,
    trial_dirname,
    trial_key,
)
from fer_core.tune.storage import sample_config


@dataclass
class Group:
    """One configuration = one Optuna trial, run once per seed."""

    number: int
    params: dict[str, Any]
    seeds: list[int]
    outcome: dict[int, tuple[str, float | None, str]] = field(default_factory=dict)
    curves: dict[int, list[float]] = field(default_factory=dict)


class SeedGroupSearcher(Searcher):
    """Ask/tell Optuna searcher for Ray Tune (see the module docstring).

    Args:
        study: the Optuna study (RDB storage) with its sampler.
        dists: knob path -> Optuna distribution; ``when``: conditional parameters.
        seeds: the study's seeds; ``n_configs``: configurations in total (grid size or num_samples).
        book: ``trials.csv``; ``run_dir``: for ``trials/<key>/result.json``.
        meta: constant columns (``profile``, ``dataset``).
    """

    def __init__(
        self,
        study: optuna.Study,
        dists: dict[str, BaseDistribution],
        when: dict[str, dict[str, Any]],
        seeds: list[int],
        n_configs: int,
        metric: str,
        mode: str,
        book: ResultBook,
        run_dir: Path,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.study = study
        self.dists = dists
        self.when = when
        self.seeds = list(seeds)
        self.n_configs = n_configs
        self.book = book
        self.run_dir = Path(run_dir)
        self.meta = dict(meta or {})
        self.groups: dict[int, Group] = {}
        self.queue: deque[tuple[int, int]] = deque()
        self.live: dict[str, tuple[int, int]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.started: dict[str, float] = {}
        self.asked = 0
        self.reconcile()

    # ------------------------------------------------------------ resume reconciliation

    def reconcile(self) -> dict[str, int]:
        """Bring ``trials.csv`` and the Optuna storage into agreement before any trial starts.

        Trusted in this order: the Optuna storage (finished trials are kept as they are), then
        ``trials.csv`` (a RUNNING trial keeps its finished seeds' rows), then the trial directories
        (a seed whose ``result.json`` exists finished: its row is rebuilt from it, not re-run).
        Other seeds are queued again and continue from their checkpoints; when the group completes
        it is told once. Rows still RUNNING/PENDING become PENDING again.
        """
        stats = {"kept": 0, "continued": 0, "seeds_requeued": 0, "seeds_recovered": 0, "told": 0}
        for ft in self.study.get_trials(deepcopy=False):
            self.asked += 1
            if ft.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
                stats["kept"] += 1
                continue
            if ft.state not in (TrialState.RUNNING, TrialState.WAITING):
                continue
            params = dict(ft.params)
            if "config" not in ft.user_attrs:  # killed inside _ask: finish sampling its knobs
                trial = optuna.Trial(self.study, ft._trial_id)
                params = sample_config(trial, self.dists, self.when)
                trial.set_user_attr("seeds", self.seeds)
                trial.set_user_attr("config_id", ft.number)
                trial.set_user_attr("config", params)
            group = Group(ft.number, params, list(ft.user_attrs.get("seeds", self.seeds)))
            self.groups[ft.number] = group
            stats["continued"] += 1
            for seed in group.seeds:
                row = self.book.get(ft.number, seed)
                done = read_trial_result(self._tdir(group, seed))
                if row and row.get("status") in FINISHED:
                    value = row.get(f"best.{self.metric}")
                    group.outcome[seed] = (
                        row["status"],
                        float(value) if value not in (None, "") else None,
                        row.get("error", ""),
                    )
                elif done is not None:  # the trainer finished; the driver died before its row
                    self._pending_row(group, seed)
                    self._record(ft.number, seed, "TERMINATED", [], done, done.get("wall_s", 0))
                    stats["seeds_recovered"] += 1
                else:
                    self.queue.append((ft.number, seed))
                    self._pending_row(group, seed)
                    stats["seeds_requeued"] += 1
            if len(group.outcome) == len(group.seeds) and not _finished(self.study, ft.number):
                self._tell(group)
                stats["told"] += 1
        if any(r.get("status") in ("RUNNING", "PENDING") for r in self.book.rows.values()):
            self.book.write()
        return stats

    # ------------------------------------------------------------ Tune's Searcher API

    def set_search_properties(self, metric, mode, config, **spec) -> bool:  # noqa: ARG002
        return True  # metric and mode come from the study

    def suggest(self, trial_id: str) -> dict | str | None:
        if not self.queue:
            if self.asked >= self.n_configs:
                return Searcher.FINISHED
            self._ask()
        number, seed = self.queue.popleft()
        group = self.groups[number]
        self.live[trial_id] = (number, seed)
        self.history[trial_id] = []
        self.started[trial_id] = time.time()
        self.book.update(number, seed, tune_trial_id=trial_id, status="PENDING")
        return {"config_id": number, "seed": seed, "optuna_trial": number, "params": group.params}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self.live:
            return
        self.history[trial_id].append(_metrics_of(result))
        number, seed = self.live[trial_id]
        if self.book.status(number, seed) != "RUNNING":
            self.book.update(number, seed, status="RUNNING")

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id not in self.live:
            return
        number, seed = self.live.pop(trial_id)
        tdir = self._tdir(self.groups[number], seed)
        done = read_trial_result(tdir)
        history = self.history.pop(trial_id, [])
        if result and not history:
            history = [_metrics_of(result)]
        if error:
            status = "ERROR"
        elif done is None and history:
            status = "PRUNED"  # stopped by the scheduler before the trainer returned
        elif done is None:
            status, error = "ERROR", True
        else:
            status = "TERMINATED"
        wall = (done or {}).get("wall_s") or time.time() - self.started.pop(trial_id, time.time())
        self._record(number, seed, status, history, done, wall)

    def _record(
        self,
        number: int,
        seed: int,
        status: str,
        history: list[dict[str, Any]],
        done: dict[str, Any] | None,
        wall: float,
    ) -> None:
        """Write the seed's row and, once every seed of its configuration is in, tell Optuna."""
        group = self.groups[number]
        key = trial_key(number, seed)
        tdir = self._tdir(group, seed)
        if done and done.get("history"):
            history = list(done["history"])  # every epoch, across restarts (trainable.py)
        fields = summarise_history(history, self.metric, self.mode)
        if done:
            for k, v in done.get("metrics", {}).items():
                if k.startswith("test/") or _FOLD_TEST.match(k):
                    fields[f"best.{k}"] = v
                elif not history:  # no epoch record at all (a result.json of an older version)
                    fields.setdefault(f"final.{k}", v)
                    fields.setdefault(f"best.{k}", v)
        err_text = _error_text(tdir) if status == "ERROR" else ""
        value = fields.get(f"best.{self.metric}")
        self.book.update(
            number,
            seed,
            status=status,
            error=err_text,
            wall_s=round(float(wall), 3),
            epochs=int(history[-1].get("epoch", len(history))) if history else 0,
            **fields,
        )
        group.outcome[seed] = (status, value, err_text)
        group.curves[seed] = [h.get(self.metric) for h in history if "fold" not in h]
        pause(f"seed_done:{key}")
        if len(group.outcome) == len(group.seeds):
            self._tell(group)

    def _tdir(self, group: Group, seed: int) -> Path:
        """``trials/c0004_threshold-0.0_s1`` (results.trial_dirname)."""
        return self.run_dir / "trials" / trial_dirname(group.number, seed, group.params)

    # ------------------------------------------------------------ Optuna side

    def _ask(self) -> None:
        trial = self.study.ask()
        params = sample_config(trial, self.dists, self.when)
        trial.set_user_attr("seeds", self.seeds)
        trial.set_user_attr("config_id", trial.number)
        trial.set_user_attr("config", params)
        self.asked += 1
        group = Group(trial.number, params, list(self.seeds))
        self.groups[trial.number] = group
        for seed in self.seeds:
            self.queue.append((trial.number, seed))
            self._pending_row(group, seed)
        self.book.write()

    def _pending_row(self, group: Group, seed: int) -> None:
        params = {f"param.{k}": v for k, v in group.params.items() if k != "row"}
        self.book.update(
            group.number,
            seed,
            write=False,
            optuna_trial=group.number,
            status="PENDING",
            row=group.params.get("row"),
            trial_dir=f"trials/{trial_dirname(group.number, seed, group.params)}",
            **self.meta,
            **params,
        )

    def _tell(self, group: Group) -> None:
        """Tell the group's Optuna trial once (a finished trial is never told again)."""
        trial_id = _trial_id(self.study, group.number)
        if self.study._storage.get_trial(trial_id).state.is_finished():
            return
        trial = optuna.Trial(self.study, trial_id)
        statuses = [o[0] for o in group.outcome.values()]
        values = [o[1] for o in group.outcome.values() if o[1] is not None and not math.isnan(o[1])]
        ids = {str(s): self.book.get(group.number, s).get("tune_trial_id") for s in group.seeds}
        trial.set_user_attr("tune_trial_ids", ids)
        if "ERROR" in statuses or not values:
            errors = [o[2] for o in group.outcome.values() if o[2]]
            trial.set_user_attr("error", (errors[0] if errors else "no result")[:2000])
            self.study.tell(trial, state=TrialState.FAIL)
            pause(f"told:{group.number}")
            return
        mean = sum(values) / len(values)
        self._seed_attrs(trial, group, values)
        _report_curve(trial, group)
        if "PRUNED" in statuses:
            trial.report(mean, step=_last_step(group) + 1)
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, mean)
        pause(f"told:{group.number}")

    def _seed_attrs(self, trial: optuna.Trial, group: Group, values: list[float]) -> None:
        """optuna-dashboard's per-trial view: each seed's value, their std (ddof=1) and the
        ``test/*`` metrics (mean over seeds, from ``trials.csv``)."""
        per_seed = {str(s): o[1] for s, o in sorted(group.outcome.items()) if o[1] is not None}
        trial.set_user_attr(f"{self.metric} per seed", per_seed)
        if len(values) > 1:
            trial.set_user_attr(f"{self.metric} std", statistics.stdev(values))
        tests: dict[str, list[float]] = {}
        for seed in group.seeds:
            for col, v in (self.book.get(group.number, seed) or {}).items():
                if col.startswith("best.test/") and v not in (None, ""):
                    tests.setdefault(col[len("best.") :], []).append(float(v))
        for name, vals in sorted(tests.items()):
            trial.set_user_attr(name, statistics.fmean(vals))

    # Tune's own searcher checkpoint is not used for resume (the storage is the truth).
    def save(self, checkpoint_path: str) -> None:  # noqa: ARG002
        return None

    def restore(self, checkpoint_path: str) -> None:  # noqa: ARG002
        return None


_FOLD_TEST = re.compile(r"^fold\d+/test/")


def _finished(study: optuna.Study, number: int) -> bool:
    return study._storage.get_trial(_trial_id(study, number)).state.is_finished()


def _trial_id(study: optuna.Study, number: int) -> int:
    return study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def _metrics_of(result: dict) -> dict[str, Any]:
    return {
        k: v
        for k, v in result.items()
        if ("/" in k or k == "epoch")
        and not k.startswith("config/")
        and isinstance(v, (int, float))
    } | ({"fold": result["fold"]} if isinstance(result.get("fold"), int) else {})


def _last_step(group: Group) -> int:
    return max((len(c) for c in group.curves.values()), default=0)


def _report_curve(trial: optuna.Trial, group: Group) -> None:
    """Intermediate values: the per-epoch mean over seeds (optuna-dashboard's curves)."""
    for step in range(_last_step(group)):
        vals = [c[step] for c in group.curves.values() if len(c) > step and c[step] is not None]
        if vals:
            trial.report(sum(vals) / len(vals), step=step)


def _error_text(tdir: Path) -> str:
    err = Path(tdir) / "error.txt"
    if err.is_file():
        return err.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1][:500]
    return "trial raised (see the Tune log under tune/)"
