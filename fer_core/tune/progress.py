"""The live progress line: trials done / running / pending / errored, an ETA, the best so far.

A Ray Tune callback reading ``trials.csv``'s rows, so what is shown is what is recorded. "best"
counts only configurations whose seeds have all finished; before any has, it names the leading
configuration with its seed count, e.g. ``(1/3 seeds)``. On a terminal the line rewrites itself
(a ``tqdm`` bar with its ETA); off a terminal a plain line is printed only when something in it
changed (never the same line twice, no escape codes).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import IO, Any

from ray.tune import Callback

from fer_core.tune.results import ResultBook, trial_dirname


def _per_config(book: ResultBook, metric: str) -> dict[int, tuple[list[float], int, bool]]:
    """config_id -> (values of its TERMINATED seeds, seeds in all, every seed TERMINATED)."""
    vals: dict[int, list[float]] = defaultdict(list)
    seeds: dict[int, int] = defaultdict(int)
    done: dict[int, bool] = defaultdict(lambda: True)
    for (cid, _), row in book.rows.items():
        seeds[cid] += 1
        v = row.get(f"best.{metric}")
        if row.get("status") == "TERMINATED" and v not in (None, ""):
            vals[cid].append(float(v))
        else:
            done[cid] = False
    return {c: (vals[c], seeds[c], done[c] and bool(vals[c])) for c in seeds}


def best_so_far(book: ResultBook, metric: str, mode: str) -> tuple[int, float] | None:
    """(config_id, seed-mean of ``best.<metric>``) of the best configuration whose seeds have
    all finished (None while none has)."""
    means = {c: sum(v) / len(v) for c, (v, _, full) in _per_config(book, metric).items() if full}
    if not means:
        return None
    pick = max if mode == "max" else min
    cid = pick(means, key=means.get)
    return cid, means[cid]


def best_text(book: ResultBook, metric: str, mode: str) -> str:
    """``best val/acc 0.4994 (config 3)``; before any configuration is complete, the leader
    among partial ones with its seed count, ``... (config 3, 1/3 seeds)``."""
    best = best_so_far(book, metric, mode)
    if best:
        return f"best {metric} {best[1]:.4f} (config {best[0]})"
    partial = {c: (sum(v) / len(v), len(v), n) for c, (v, n, _) in _per_config(book, metric).items() if v}  # fmt: skip
    if not partial:
        return "best -"
    pick = max if mode == "max" else min
    cid = pick(partial, key=lambda c: partial[c][0])
    mean, k, n = partial[cid]
    return f"best {metric} {mean:.4f} (config {cid}, {k}/{n} seeds)"


def counts(book: ResultBook, total: int) -> dict[str, int]:
    c = book.counts()
    done = c["TERMINATED"] + c["PRUNED"]
    pending = max(total - done - c["ERROR"] - c["RUNNING"], 0)
    return {"done": done, "pruned": c["PRUNED"], "running": c["RUNNING"], "pending": pending,
            "errored": c["ERROR"]}  # fmt: skip


def status_text(book: ResultBook, metric: str, mode: str, total: int) -> str:
    c = counts(book, total)
    return (
        f"trials {c['done']}/{total} done ({c['pruned']} pruned), {c['running']} running, "
        f"{c['pending']} pending, {c['errored']} errored | {best_text(book, metric, mode)}"
    )


def progress_line(book: ResultBook, metric: str, mode: str, total: int, elapsed: float) -> str:
    return f"[{elapsed:7.1f}s] {status_text(book, metric, mode, total)}"


class ProgressCallback(Callback):
    """Shows :func:`status_text` on ``stream`` (default: stdout, looked up when printing).

    ``tty`` (default: ``stream.isatty()``): one ``tqdm`` line that rewrites itself with the ETA;
    otherwise a plain line whenever the status changed (checked at most every ``interval``
    seconds, and at every trial end).
    """

    def __init__(
        self,
        book: ResultBook,
        metric: str,
        mode: str,
        total: int,
        interval: float = 10.0,
        stream: IO[str] | None = None,
        tty: bool | None = None,
    ) -> None:
        self.book, self.metric, self.mode, self.total = book, metric, mode, total
        self.interval = interval
        self.stream = stream  # None: sys.stdout at print time (Tune pickles callbacks)
        self.tty = tty
        self.t0 = time.time()
        self.last = 0.0
        self.last_status = ""
        self._bar = None

    def _out(self) -> IO[str]:
        return self.stream or sys.stdout

    def _is_tty(self) -> bool:
        if self.tty is None:
            out = self._out()
            self.tty = bool(getattr(out, "isatty", lambda: False)())
        return self.tty

    def _print(self, force: bool = False, final: bool = False) -> None:
        """On a terminal, ``force`` redraws at once; off a terminal a changed status is printed
        at most every ``interval`` seconds (a burst of trial ends is one line), and at the end."""
        now = time.time()
        tty = self._is_tty()
        if not final and now - self.last < self.interval and not (force and tty):
            return
        status = status_text(self.book, self.metric, self.mode, self.total)
        if tty:
            self._show_bar(status)
        elif status != self.last_status:
            print(f"[{now - self.t0:7.1f}s] {status}", file=self._out(), flush=True)
        else:
            return
        self.last, self.last_status = now, status

    def _show_bar(self, status: str) -> None:
        from tqdm import tqdm

        c = counts(self.book, self.total)
        if self._bar is None:
            self._bar = tqdm(total=self.total, file=self._out(), dynamic_ncols=True, unit="trial",
                             bar_format="{n}/{total} trials {bar:12} {elapsed}<{remaining} {postfix}")  # fmt: skip
        self._bar.n = c["done"] + c["errored"]
        self._bar.set_postfix_str(status.split(" done ", 1)[-1], refresh=False)
        self._bar.refresh()

    def message(self, text: str) -> None:
        """A line of its own above the progress line (an errored trial)."""
        if self._bar is not None:
            self._bar.write(text, file=self._out())
        else:
            print(text, file=self._out(), flush=True)

    def __getstate__(self) -> dict[str, Any]:  # the bar and stream stay in this process
        return {**self.__dict__, "_bar": None, "stream": None}

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:  # noqa: ARG002
        self._print()

    def on_trial_result(self, iteration: int, trials: list, trial, result, **info: Any) -> None:  # noqa: ARG002
        self._print()

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:  # noqa: ARG002
        self._print(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:  # noqa: ARG002
        cfg = getattr(trial, "config", None) or {}
        if "config_id" in cfg and "seed" in cfg:
            key = trial_dirname(cfg["config_id"], cfg["seed"], cfg.get("params"))
            err = self.book.path.parent / "trials" / key / "error.txt"
            text = err.read_text(errors="replace").strip() if err.is_file() else "see tune/"
            self.message(f"trial {key} errored: {text[:300]}")
        self._print(force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:  # noqa: ARG002
        self._print(final=True)
        self.close()
