"""Every study file in studies/ makes a report: its resolved study.yaml (as the runner writes it)
with fabricated results for every configuration it expects; nothing expected is dropped."""

from __future__ import annotations

import itertools
import math
import random
from pathlib import Path

import pytest
from report_fixtures import write_run

from fer_core.report import assemble, load_runs
from fer_core.report.collect import report_kind, report_metrics, study_seeds
from fer_core.report.design import expected_keys, grid_values, sensitivity_x, space_entry
from fer_core.report.export import parse_formats, write_report_atomic
from fer_core.report.fractions import fraction_factor, fraction_label, row_layout

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPO / "studies").glob("*.yaml"))


def _resolved(path: Path) -> dict:
    import yaml

    study_pkg = pytest.importorskip("fer_core.study", reason="the study loader is not there yet")
    # the knob paths are composed by tests/study/test_study_files.py; resolving is what matters here
    resolved = study_pkg.load_study(path, profile="synth", check_knobs=False)
    return yaml.safe_load(resolved.to_yaml())


def _sample(entry: dict, rng: random.Random):
    entry = {k: v for k, v in (entry or {}).items() if v is not None}
    for form in ("grid", "choice"):
        if form in entry:
            return rng.choice(entry[form])
    if "int" in entry:
        return rng.randint(*entry["int"])
    if "loguniform" in entry:
        lo, hi = entry["loguniform"]
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    lo, hi = entry.get("uniform", [0.0, 1.0])
    return rng.uniform(lo, hi)


def _fake_trials(study: dict, kind: str) -> list[dict]:
    rng = random.Random(0)
    metrics = list(dict.fromkeys([study.get("metric", "val/acc"), *report_metrics(study)]))
    keys = expected_keys(study, kind)
    if kind == "ablation":
        configs = [{"row": k} for k in keys]
    elif kind == "sensitivity" and keys:
        space = study.get("space") or {}
        grids = {p: grid_values(space_entry(study, p)) for p in space}
        grids = {p: g for p, g in grids.items() if g and not space[p].get("when")}
        grids[sensitivity_x(study)] = keys
        configs = [
            {f"param.{p}": v for p, v in zip(grids, combo)}
            for combo in itertools.product(*grids.values())
        ]
    else:
        space = study.get("space") or {}
        configs = [
            {f"param.{p}": _sample(e, rng) for p, e in space.items()}
            for _ in range(min(4, int(study.get("num_samples") or 4)))
        ]
    rows = []
    for cid, cfg in enumerate(configs):
        for seed in study_seeds(study):  # every seed, so each cell is complete
            rows.append(
                {"config_id": cid, "seed": seed, "optuna_trial": cid, "status": "TERMINATED", **cfg}
                | {f"best.{m}": rng.uniform(0.5, 0.9) for m in metrics}
            )
    return rows


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_every_study_reports(path, tmp_path):
    study = _resolved(path)
    kind = report_kind(study)
    run = write_run(
        tmp_path / "runs",
        study,
        "synth",
        str(study.get("base", {}).get("data", "synthfer")),
        _fake_trials(study, kind),
    )
    report = assemble(load_runs([run]))  # what build_report writes, assembled once
    out = write_report_atomic(report, tmp_path / "rep", parse_formats("md,tex,csv"))
    md = (out / "report.md").read_text()
    assert study["name"] in md
    if kind in ("ablation", "sensitivity"):
        # a label-fraction ablation shows one row per setting and one column per fraction
        fractions = fraction_factor(study) if kind == "ablation" else None
        table = next(t for t in report.tables if t.name == ("fractions" if fractions else kind))
        shown = [str(v) for v in table.df.iloc[:, 0]]
        keys = expected_keys(study, kind)
        if fractions:
            keys = list(dict.fromkeys(row_layout(study)[k][0] for k in keys))
            for f in fractions[1]:
                assert any(fraction_label(f) in str(c) for c in table.df.columns), f
        for key in keys:
            assert any(str(key) == s or _close(key, s) for s in shown), (key, shown)
        assert not (report.stats["state"] != "complete").any()


def _close(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9)
    except (TypeError, ValueError):
        return False
