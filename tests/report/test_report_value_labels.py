"""``report.labels`` names swept values in the sensitivity table and plot (``{0.9: never}``)."""

from __future__ import annotations

from fer_core.report.tables import value_label, value_name

STUDY = {"report": {"kind": "sensitivity", "labels": {0.9: "never"}}}


def test_values_get_their_names():
    assert value_name(STUDY, 0.9) == "never"
    assert value_name(STUDY, "0.9") == "never"  # numbers written differently are the same value
    assert value_name(STUDY, 0.4) is None
    assert value_name({}, 0.9) is None
    assert value_label(STUDY, 0.9) == "0.9 (never)"
    assert value_label(STUDY, "0.9", "\n") == "0.9\n(never)"
    assert value_label(STUDY, 0.2) == "0.2"


def test_the_threshold_study_labels_its_never_point(repo_root):
    from fer_core.study import load_study

    study = load_study(repo_root / "studies" / "pll_threshold.yaml", profile="synth")
    assert study.space["method.revision.threshold"] == {"grid": [0.0, 0.1, 0.2, 0.3, 0.4, 0.9]}
    raw = study.model_dump() if hasattr(study, "model_dump") else vars(study)
    labels = (raw.get("report") or {}).get("labels") or {}
    assert labels == {0.9: "never"}
