"""Every file in studies/ and search_spaces/ validates, and every study dry-runs per profile.

The parametrization globs the folders at collection time, so study and space files that other
issues add (pll_threshold.yaml, mim.yaml, ...) are picked up without editing this test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_core.study import format_plan, load_study, plan_trials, validate_files
from fer_core.study.loader import read_study

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPO / "studies").glob("*.yaml"))
SPACES = sorted((REPO / "search_spaces").glob("*.yaml"))


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def test_the_folders_hold_the_shipped_files():
    assert (REPO / "studies" / "quickstart.yaml") in STUDIES
    assert (REPO / "search_spaces" / "common.yaml") in SPACES


@pytest.mark.parametrize("path", STUDIES + SPACES, ids=_ids(STUDIES + SPACES))
def test_file_validates(path: Path):
    errors = validate_files([path])
    assert errors == [], "\n".join(str(e) for e in errors)


@pytest.mark.parametrize("path", STUDIES, ids=_ids(STUDIES))
def test_study_dry_runs_every_profile(path: Path):
    for profile in read_study(path).profiles():
        study = load_study(path, profile, check_knobs=False)
        plan = plan_trials(study)
        assert plan.n_trials == plan.num_configs * len(study.seeds) >= 1
        text = format_plan(plan)
        assert f"study {study.name} (profile {profile})" in text
        assert study.name == path.stem, "a study's name is its file stem (runs/<name>-<profile>)"


def test_a_broken_space_file_is_reported(tmp_path: Path):
    folder = tmp_path / "search_spaces"
    folder.mkdir()
    path = folder / "bad.yaml"
    path.write_text(
        "ok:\n  sched.lr: {grid: [0.1]}\n"
        "bad:\n  sched.lr: {uniform: [1.0, 0.0]}\n  Bad-Knob: {grid: [1]}\n"
        "typo:\n  sched.lr: {gird: [1]}\n"
        "cond:\n  a.b: {grid: [1], when: {c.d: 1}}\n"
    )
    errors = validate_files([path])
    got = {(e.key, e.line) for e in errors}
    assert ("bad.sched.lr", 4) in got and ("bad.Bad-Knob", 5) in got
    assert ("typo.sched.lr.gird", 7) in got
    assert any("searched earlier" in e.message and e.key == "cond.a.b" for e in errors)
    assert any("Did you mean 'grid'?" in e.message for e in errors)
