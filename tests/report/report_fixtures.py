"""Helpers for the report tests: run directories written the way the study runner writes them
(study.yaml, manifest.json, trials.csv; optuna.db for search studies), with known values.

A uniquely named module (not ``conftest``) so that ``from report_fixtures import ...`` cannot pick
up another folder's conftest."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

# seed values (fractions) of test/acc and test/uar per ablation row; baseline "full"
ABLATION_VALUES = {
    "vanilla": ([0.850, 0.855, 0.848], [0.800, 0.790, 0.805]),
    "decoder": ([0.861, 0.866, 0.870], [0.812, 0.815, 0.809]),
    "full": ([0.880, 0.884, 0.879], [0.830, 0.826, 0.829]),
}

ABLATION_STUDY = {
    "name": "abl_demo",
    "description": "Decoder / uniform-loss ablation (cf. 001 Table VIII).",
    "paper": "001 Table VIII",
    "metric": "val/acc",
    "mode": "max",
    "base": {"method": "pll", "model": "vit_tiny_cpu", "trainer.epochs": 2},
    "ablation": {
        "baseline": "full",
        "rows": [
            {
                "name": "vanilla",
                "set": {"method.decoder.enabled": False, "method.uniform.enabled": False},
            },
            {"name": "decoder", "set": {"method.uniform.enabled": False}},
            {"name": "full", "set": {}},
        ],
    },
    "seeds": [0, 1, 2],
    "reference": {
        "source": "001 Table VIII",
        "metric": "test/acc",
        "values": {"rafdb": {"vanilla": 90.35, "decoder": 91.29, "full": 92.05}},
    },
    "report": {
        "kind": "ablation",
        "metrics": ["test/acc", "test/uar"],
        "components": {"Decoder": "method.decoder.enabled", "L_uniform": "method.uniform.enabled"},
    },
}

SENS_X = [0.001, 0.005, 0.01]
SENS_STUDY = {
    "name": "sens_demo",
    "description": "Uniform-loss temperature (cf. 001 Table IX).",
    "paper": "001 Table IX",
    "metric": "val/acc",
    "mode": "max",
    "base": {"method": "pll", "data": {"val_fraction": 0.1}},
    "space": {"method.uniform.tau": {"grid": SENS_X}},
    "seeds": [0, 1],
    "reference": {
        "source": "001 Table IX",
        "metric": "test/acc",
        "values": {"rafdb": {0.001: 92.35, 0.005: 91.78, 0.01: 91.52}},
        "optimum": {"value": 0.001, "note": "tau = 0.001 performs best"},
    },
    "report": {"kind": "sensitivity", "x": "method.uniform.tau", "metrics": ["test/acc"]},
}


def write_run(
    root: Path,
    study: dict,
    profile: str,
    dataset: str,
    rows: list[dict],
    manifest: dict | None = None,
) -> Path:
    """Write runs/<name>-<profile>/ with study.yaml, manifest.json and trials.csv."""
    run_dir = root / f"{study['name']}-{profile}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
    manifest = manifest or {
        "study_hash": "abc123",
        "git_commit": "deadbeef",
        "versions": {"torch": "2.14.1", "optuna": "5.0.0"},
        "hardware": {"cpu": "2 cores"},
        "data_hash": f"{dataset}-hash",
        "command": f"fer-study run studies/{study['name']}.yaml --profile {profile}",
        "profile": profile,
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    base = {"profile": profile, "dataset": dataset, "error": "", "wall_s": 1.0, "epochs": 2}
    df = pd.DataFrame([{**base, **r} for r in rows])
    df.to_csv(run_dir / "trials.csv", index=False)
    return run_dir


def ablation_rows(values: dict = ABLATION_VALUES, drop: tuple = ()) -> list[dict]:
    rows = []
    for cid, (row, (acc, uar)) in enumerate(values.items()):
        for seed, (a, u) in enumerate(zip(acc, uar)):
            status = "PENDING" if (row, seed) in drop else "TERMINATED"
            rec = {
                "config_id": cid,
                "seed": seed,
                "tune_trial_id": f"t{cid}_{seed}",
                "optuna_trial": cid,
                "row": row,
                "status": status,
                "param.row": row,
            }
            if status == "TERMINATED":
                rec |= {"best.test/acc": a, "best.test/uar": u, "best.val/acc": a + 0.01}
            rows.append(rec)
    return rows


def sensitivity_rows(offset: float = 0.0, seeds: int = 2) -> list[dict]:
    rows = []
    for cid, x in enumerate(SENS_X):
        for seed in range(seeds):
            acc = 0.80 - 3.0 * x + 0.004 * seed + offset
            rows.append(
                {
                    "config_id": cid,
                    "seed": seed,
                    "tune_trial_id": f"t{cid}_{seed}",
                    "optuna_trial": cid,
                    "status": "TERMINATED",
                    "param.method.uniform.tau": x,
                    "best.test/acc": acc,
                    "best.val/acc": acc + 0.01,
                    "final.test/acc": acc - 0.01,
                }
            )
    return rows


SEARCH_STUDY = {
    "name": "search_demo",
    "description": "TPE over lr and tau.",
    "metric": "val/acc",
    "mode": "max",
    "base": {"method": "pll"},
    "space": {
        "optim.lr": {"loguniform": [1e-5, 1e-2]},
        "method.uniform.tau": {"uniform": [0.001, 0.1]},
    },
    "algorithm": {"name": "tpe", "seed": 0},
    "num_samples": 8,
    "seeds": [0, 1],
    "report": {"kind": "search", "metrics": ["test/acc"]},
}


def write_search_run(root: Path, n_configs: int = 8) -> Path:
    """A search run: trials.csv (2 seeds per configuration) and a real optuna.db."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows, run_dir = [], root / "search_demo-synth"
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{run_dir / 'optuna.db'}"
    study = optuna.create_study(
        study_name="search_demo-synth",
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    for cid in range(n_configs):
        trial = study.ask()
        lr = trial.suggest_float("optim.lr", 1e-5, 1e-2, log=True)
        tau = trial.suggest_float("method.uniform.tau", 0.001, 0.1)
        accs = [0.7 + 0.02 * (-abs(__import__("math").log10(lr) + 3.5)) + 0.01 * s for s in (0, 1)]
        for s, a in enumerate(accs):
            rows.append(
                {
                    "config_id": cid,
                    "seed": s,
                    "tune_trial_id": f"t{cid}_{s}",
                    "optuna_trial": trial.number,
                    "status": "TERMINATED",
                    "param.optim.lr": lr,
                    "param.method.uniform.tau": tau,
                    "best.val/acc": a + 0.01,
                    "best.test/acc": a,
                }
            )
        study.tell(trial, sum(accs) / 2 + 0.01)
    return write_run(root, SEARCH_STUDY, "synth", "synthfer", rows)
