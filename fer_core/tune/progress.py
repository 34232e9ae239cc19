"""The live progress line: trials done / running / pending / errored and the best so far.

A Ray Tune callback that prints one line (at most every ``interval`` seconds, and at every trial
end) from ``trials.csv``'s rows, so what is shown is what is recorded.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import IO, Any

from ray.tune import Callback

from fer_core.tune.results import ResultBook, trial_key


def best_so_far(book: ResultBook, metric: str, mode: str) -> tuple[int, float] | None:
    """(config_id, seed-mean of ``best.<metric>``) of the best finished configuration."""
    per: dict[int, list[float]] = defaultdict(list)
    for (cid, _), row in book.rows.items():
        v = row.get(f"best.{metric}")
        if row.get("status") == "TERMINATED" and v not in (None, ""):
            per[cid].append(float(v))
    if not per:
        return None
    means = {c: sum(v) / len(v) for c, v in per.items()}
    pick = max if mode == "max" else min
    cid = pick(means, key=means.get)
    return cid, means[cid]


def progress_line(book: ResultBook, metric: str, mode: str, total: int, elapsed: float) -> str:
    c = book.counts()
    done = c["TERMINATED"] + c["PRUNED"]
    best = best_so_far(book, metric, mode)
    best_txt = f"best {metric} {best[1]:.4f} (config {best[0]})" if best else "best -"
    pending = max(total - done - c["ERROR"] - c["RUNNING"], c["PENDING"])
    return (
        f"[{elapsed:7.1f}s] trials {done}/{total} done ({c['PRUNED']} pruned), "
        f"{c['RUNNING']} running, {pending} pending, {c['ERROR']} errored | {best_txt}"
    )


class ProgressCallback(Callback):
    """Prints :func:`progress_line` to ``stream``."""

    def __init__(
        self,
        book: ResultBook,
        metric: str,
        mode: str,
        total: int,
        interval: float = 10.0,
        stream: IO[str] | None = None,
    ) -> None:
        self.book, self.metric, self.mode, self.total = book, metric, mode, total
        self.interval = interval
        self.stream = stream  # None: sys.stdout at print time (Tune pickles callbacks)
        self.t0 = time.time()
        self.last = 0.0
        self.last_line = ""

    def _print(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < self.interval:
            return
        line = progress_line(self.book, self.metric, self.mode, self.total, now - self.t0)
        if force or line != self.last_line:
            print(line, file=self.stream or sys.stdout, flush=True)
        self.last, self.last_line = now, line

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:  # noqa: ARG002
        self._print()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:  # noqa: ARG002
        self._print(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:  # noqa: ARG002
        cfg = getattr(trial, "config", None) or {}
        if "config_id" in cfg and "seed" in cfg:
            key = trial_key(cfg["config_id"], cfg["seed"])
            err = self.book.path.parent / "trials" / key / "error.txt"
            text = err.read_text(errors="replace").strip() if err.is_file() else "see tune/"
            print(f"trial {key} errored: {text[:300]}", file=self.stream or sys.stdout, flush=True)
        self._print(force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:  # noqa: ARG002
        self._print(force=True)
