"""Resume refuses a changed study; helpers for the kill tests.

The kill tests are ``test_resume_killpoints.py`` (a sweep over kill instants, Ctrl-C twice, the
real trainer) and ``test_kfold_study.py`` (a runner that owns its Ray, killed mid-fold)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_core.tune.runner import StudyChangedError, run_study
from fer_core.tune.spec import StudySpec


def session_pids(sid: int) -> list[int]:
    """Live processes whose session or process group is ``sid`` (zombies excluded)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        state, pgrp, session = fields[0], int(fields[2]), int(fields[3])
        if state != "Z" and sid in (pgrp, session):
            out.append(int(entry.name))
    return out


def test_resume_refuses_a_changed_study(tmp_path):
    spec = StudySpec(name="chg", space={"synthetic.x1": {"grid": [0.1]}}, seeds=[0])
    from fer_core.tune.manifest import write_study_yaml

    write_study_yaml(tmp_path, spec)
    changed = StudySpec(name="chg", space={"synthetic.x1": {"grid": [0.1, 0.2]}}, seeds=[0, 1])
    with pytest.raises(StudyChangedError) as err:
        run_study(changed, tmp_path, resume=True)
    assert "seeds" in str(err.value) and "space.synthetic.x1.grid" in str(err.value)
