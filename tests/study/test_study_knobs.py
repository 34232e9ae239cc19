"""Knob paths are checked against the trainer config (engine.build.compose)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from fer_core.study import StudyValidationError, load_study
from fer_core.study.knobs import knob_scenarios

STUDY = """\
name: k
base: {method: pll, trainer.epochs: 1}
profiles:
  synth: {data: synthfer}
  paper: {data: rafdb, model: vit_base}
space:
  model: {choice: [vit_tiny_cpu, resnet_tiny_cpu]}
  method.decoder.enabled: {choice: [true, false]}
  method.uniform.tau: {grid: [0.001, 0.01], when: {method.decoder.enabled: true}}
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "studies").mkdir(exist_ok=True)
    path = tmp_path / "studies" / "k.yaml"
    path.write_text(text)
    return path


def test_scenarios_cover_conditions_and_group_choices(tmp_path: Path):
    s = load_study(_write(tmp_path, STUDY), check_knobs=False)
    scenarios = [settings for _, settings in knob_scenarios(s)]
    assert scenarios[0] == {"model": "vit_tiny_cpu", "method.decoder.enabled": True}
    assert {"model": "resnet_tiny_cpu", "method.decoder.enabled": True} in scenarios
    assert any(x.get("method.uniform.tau") == 0.001 for x in scenarios)


def test_fake_compose_errors_point_at_the_study_key(tmp_path: Path, monkeypatch):
    calls: list[list[str]] = []

    class ConfigError(ValueError):
        pass

    def compose(overrides=()):
        calls.append(list(overrides))
        for o in overrides:
            if o.startswith("method.uniform.tau"):
                raise ConfigError("unknown key 'method.uniform.tau': method.uniform has no 'tau'")
        return {}

    fake = types.ModuleType("fer_core.engine.build")
    fake.compose = compose
    fake.ConfigError = ConfigError
    monkeypatch.setitem(sys.modules, "fer_core.engine.build", fake)
    import fer_core.engine

    monkeypatch.setattr(fer_core.engine, "build", fake, raising=False)
    path = _write(tmp_path, STUDY)
    with pytest.raises(StudyValidationError) as info:
        load_study(path)
    (err,) = info.value.errors
    assert err.key == "space.method.uniform.tau" and err.line == 9
    assert "(profile synth)" in err.message
    assert any("method.decoder.enabled=true" in c for c in calls[-1])


def test_real_compose_accepts_and_rejects(tmp_path: Path):
    path = _write(tmp_path, STUDY)
    s = load_study(path)
    assert s.space["method.uniform.tau"]["when"] == {"method.decoder.enabled": True}
    bad = STUDY.replace("method: pll, trainer.epochs: 1", "method: pll, trainer.epoch: 1")
    with pytest.raises(StudyValidationError) as info:
        load_study(_write(tmp_path, bad))
    assert info.value.errors[0].key == "base.trainer.epoch"
    assert info.value.errors[0].line == 2
    prof = STUDY.replace("data: rafdb", "data: rafdbx")
    with pytest.raises(StudyValidationError) as info:
        load_study(_write(tmp_path, prof), "paper")
    assert info.value.errors[0].key == "profiles.paper.data"
    assert "rafdbx" in str(info.value)


def test_command_line_typo_is_named(tmp_path: Path):
    path = _write(tmp_path, STUDY)
    with pytest.raises(StudyValidationError) as info:
        load_study(path, overrides=["trainer.epoch=1"])
    (err,) = info.value.errors
    assert err.key == "-o trainer.epoch" and err.line is None
    assert "Did you mean 'trainer.epochs'?" in err.message


def test_a_data_value_the_build_refuses_fails_the_study_check(tmp_path: Path):
    """``--dry-run`` refuses what ``fer-study run`` would refuse when it builds the data: an
    unquoted ``true`` (YAML's boolean) for SynthFER's label source, a stage's bad value, noise."""
    text = STUDY.replace(
        "synth: {data: synthfer}", "synth: {data: synthfer, data.label_source: true}"
    )
    with pytest.raises(StudyValidationError) as info:
        load_study(_write(tmp_path, text))
    (err,) = info.value.errors
    assert err.key == "profiles.synth.data.label_source" and err.line == 4
    assert "'votes' or 'true', got True" in err.message and "quote it" in err.message
    quoted = STUDY.replace(
        "synth: {data: synthfer}", "synth: {data: synthfer, data.label_source: 'true'}"
    )
    load_study(_write(tmp_path, quoted))
    noisy = STUDY.replace("trainer.epochs: 1}", "trainer.epochs: 1, data.label_noise: 1.5}")
    with pytest.raises(
        StudyValidationError, match=r"data.label_noise must be a number in \[0, 1\)"
    ):
        load_study(_write(tmp_path, noisy))


def test_a_stage_s_data_values_are_checked_and_named():
    from fer_core.engine.build import compose
    from fer_core.study.knobs import check_config_data

    check_config_data(compose(["recipe=ssfer", "data=synthfer"]))
    with pytest.raises(ValueError, match=r"stage 'finetune': data.img_size must be an integer"):
        check_config_data(
            compose(["recipe=ssfer", "data=synthfer", "stages.finetune.data.img_size=8"])
        )
