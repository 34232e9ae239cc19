"""The ``trials.csv`` contract (INTERFACES.md), shared by its writer and its reader.

The study runner (``fer_core.tune.results``) writes one row per (configuration, seed); reports
(``fer_core.report.collect``) read it without importing Ray or the trainer, so the column names
and trial states live here, in a module that imports nothing.
"""

#: Trial states; only TERMINATED trials enter a report's statistics.
STATUSES = ("TERMINATED", "PRUNED", "ERROR", "RUNNING", "PENDING")

#: The first columns of every row, in order; ``param.*``, ``final.*``, ``best.*`` and
#: ``trial_dir`` follow.
BASE_COLUMNS = (
    "config_id",
    "seed",
    "tune_trial_id",
    "optuna_trial",
    "profile",
    "dataset",
    "row",
    "status",
    "error",
    "wall_s",
    "epochs",
)
