"""Named pause points for kill tests: hold a run at an exact instant so a test can SIGKILL it there.

``FER_STUDY_PAUSE_AT`` lists points (comma-separated, e.g. ``epoch:c0001-s0:2,told:0``) and
``FER_STUDY_PAUSE_DIR`` a folder. A run reaching a listed point writes ``<dir>/<point>`` (its pid)
and then waits to be killed (``block=False``: writes the marker and goes on, for instants like
Ray start-up that no code of ours spans). Unset (always, outside tests), a point costs one
environment lookup. The runner passes both variables on to Ray workers.

Points: ``ray_init`` (runner, just before ``ray.init``; does not block), ``mid_epoch:<key>:<epoch>``
(synthetic train function, inside an epoch before its checkpoint), ``epoch:<key>:<epoch>`` (the
trainable, after an epoch's checkpoint and record, before it is reported; ``epoch`` 1-based, k-fold
counts over folds), ``trained:<key>`` (after the train function returned, before ``result.json``),
``seed_done:<key>`` (driver, a seed's row recorded, its configuration not yet told), ``told:<config>``
(driver, right after Optuna's ``tell``), ``tail`` (driver, after ``Tuner.fit``, before the last
``trials.csv`` write).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

AT_ENV = "FER_STUDY_PAUSE_AT"
DIR_ENV = "FER_STUDY_PAUSE_DIR"


def pause(point: str, block: bool = True) -> None:
    """Mark ``point`` and wait forever if it is listed in ``FER_STUDY_PAUSE_AT`` (module doc)."""
    listed = os.environ.get(AT_ENV)
    if not listed or point not in listed.split(","):
        return
    folder = Path(os.environ.get(DIR_ENV) or ".")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / point.replace("/", "_")).write_text(str(os.getpid()))
    while block:
        time.sleep(0.5)


def env_vars() -> dict[str, str]:
    """The pause variables that are set (for Ray's ``runtime_env``)."""
    return {k: os.environ[k] for k in (AT_ENV, DIR_ENV) if os.environ.get(k)}
