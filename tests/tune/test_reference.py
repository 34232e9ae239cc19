"""report.reference's own configuration: the base with ``set`` on top, a replaced group's
settings dropped; one configuration, the study's seeds, no search (fer_core/tune/reference.py)."""

from __future__ import annotations

from fer_core.study import load_study
from fer_core.tune.reference import reference_settings, reference_spec
from fer_core.tune.spec import spec_from_study


def test_reference_switches_the_method_and_drops_its_settings():
    study = load_study("studies/pll_threshold.yaml", "synth", [], check_knobs=False)
    settings = reference_settings(study)
    assert settings["method"] == "ce"
    assert not [k for k in settings if k.startswith("method.")]  # PLL's knobs belong to PLL
    assert settings["trainer.epochs"] == study.base["trainer.epochs"]  # the same budget
    assert settings["data.n_train"] == study.base["data.n_train"]
    spec = spec_from_study(study)
    ref = reference_spec(study, spec)
    assert ref.name == "pll_threshold-reference" and ref.space == {} and ref.ablation_rows is None
    assert ref.seeds == spec.seeds and ref.scheduler == {"name": "none"}
    assert "method=ce" in ref.base_overrides
    assert ref.resolved["report"] is None and ref.resolved["base"] == settings


def test_a_recipe_choice_drops_the_replaced_recipe_s_stage_settings():
    """ssl_protocols' reference is CE from scratch (recipe: supervised): the base's and profile's
    ``stages.pretrain.*`` keys name a stage the supervised recipe does not have."""
    study = load_study("studies/ssl_protocols.yaml", "synth", [], check_knobs=False)
    assert any(k.startswith("stages.") for k in study.base)
    settings = reference_settings(study)
    assert settings["recipe"] == "supervised"
    assert not [k for k in settings if k.startswith(("stages.", "recipe."))]
    assert settings["trainer.epochs"] == study.base["trainer.epochs"] == 10  # the same budget
    assert settings["data.n_train"] == study.base["data.n_train"]
    assert settings["model"] == study.base["model"]


def test_no_reference_no_spec():
    study = load_study("studies/quickstart.yaml", "synth", [], check_knobs=False)
    assert reference_settings(study) is None
    assert reference_spec(study, spec_from_study(study)) is None
