"""load_study: the -o rule, profiles, references, line numbers, safe YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fer_core.study import StudyValidationError, load_study, parse_override
from fer_core.study.loader import override_value, to_overrides

STUDY = """\
name: demo
metric: val/acc
mode: max
base:
  method: pll
  trainer: {epochs: 3}
profiles:
  synth: {data: synthfer, seeds: [0, 1]}
  paper: {data: rafdb, model: vit_base, resources: {gpu: 1}}
space:
  method.revision.threshold: {grid: [0.0, 0.5]}
  sched.lr: "search_spaces/common.yaml#lr_grid"
seeds: [0]
resources: {cpu: 1, gpu: 0, max_concurrent: 2}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "studies").mkdir()
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "search_spaces" / "common.yaml").write_text(
        "lr_grid:\n  sched.lr: {grid: [0.001, 0.003]}\n"
        "pair:\n  sched.lr: {grid: [0.1]}\n  trainer.batch_size: {grid: [8, 16]}\n"
        "single: {choice: [1, 2]}\n"
    )
    (tmp_path / "studies" / "demo.yaml").write_text(STUDY)
    return tmp_path


def _write(repo: Path, text: str) -> Path:
    path = repo / "studies" / "x.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_profile_and_references(repo: Path):
    s = load_study(repo / "studies" / "demo.yaml")
    assert s.profile == "synth" and s.study_name == "demo-synth"
    assert s.seeds == [0, 1], "a profile may set study fields"
    assert s.space["sched.lr"] == {"grid": [0.001, 0.003]}, "per-knob reference inlined"
    assert s.base == {"method": "pll", "trainer.epochs": 3, "data": "synthfer"}
    assert s.trainer_overrides == ["method=pll", "data=synthfer", "trainer.epochs=3"]
    p = load_study(repo / "studies" / "demo.yaml", "paper")
    assert p.resources["gpu"] == 1 and p.seeds == [0]
    assert "model=vit_base" in p.trainer_overrides
    with pytest.raises(ValueError, match="profile 'nope' does not exist"):
        load_study(repo / "studies" / "demo.yaml", "nope")


def test_override_rule(repo: Path):
    s = load_study(
        repo / "studies" / "demo.yaml",
        overrides=[
            "seeds=[3,4]",
            "resources.gpu=0.5",
            "algorithm.name=random",
            "num_samples=5",
            "trainer.epochs=1",
            "data.val_fraction=0.2",
            "space.method.revision.threshold.grid=[0.9]",
        ],
    )
    assert s.seeds == [3, 4], "-o wins over the profile's study fields"
    assert s.resources["gpu"] == 0.5 and s.algorithm["name"] == "random" and s.num_samples == 5
    assert s.space["method.revision.threshold"] == {"grid": [0.9]}
    assert (
        "trainer.epochs=1" in s.trainer_overrides and "trainer.epochs=3" not in s.trainer_overrides
    )
    assert "data.val_fraction=0.2" in s.trainer_overrides
    assert parse_override("seeds=[0,1]") == ("seeds", [0, 1])
    assert parse_override("data.root=/a b/c") == ("data.root", "/a b/c")
    for bad in ("noequals", "=3", "model._target_=os.system"):
        with pytest.raises(ValueError):
            parse_override(bad)


def test_whole_space_references(repo: Path):
    path = _write(
        repo,
        """\
        name: x
        profiles: {synth: {}, paper: {}}
        space: [search_spaces/common.yaml#pair, {method.label_smoothing: {grid: [0.0, 0.1]}}]
        """,
    )
    s = load_study(path)
    assert list(s.space) == ["sched.lr", "trainer.batch_size", "method.label_smoothing"]
    path.write_text(
        "name: x\nprofiles: {synth: {}, paper: {}}\nspace: search_spaces/common.yaml#pair\n"
        "algorithm: random\nnum_samples: 2\n"
    )
    assert list(load_study(path).space) == ["sched.lr", "trainer.batch_size"]
    path.write_text(
        "name: x\nprofiles: {synth: {}, paper: {}}\nspace:\n  trainer.batch_size: search_spaces/common.yaml#single\n"
    )
    assert load_study(path).space == {"trainer.batch_size": {"choice": [1, 2]}}
    path.write_text(
        "name: x\nprofiles: {synth: {}, paper: {}}\nspace:\n  trainer.seed: search_spaces/common.yaml#pair\n"
    )
    with pytest.raises(ValueError, match="has no knob 'trainer.seed'"):
        load_study(path)
    path.write_text("name: x\nprofiles: {synth: {}, paper: {}}\nspace: ../secret.yaml#a\n")
    with pytest.raises(ValueError, match="is not allowed"):
        load_study(path)


def test_every_error_at_once_with_lines(repo: Path):
    path = _write(
        repo,
        """\
        name: x
        mode: up
        profiles: {synth: {}, paper: {}}
        seeds: []
        resources: {gpu: -1}
        """,
    )
    with pytest.raises(StudyValidationError) as info:
        load_study(path)
    got = {(e.key, e.line) for e in info.value.errors}
    assert got == {("mode", 2), ("seeds", 4), ("resources.gpu", 5)}
    assert str(path) in str(info.value)


def test_safe_yaml_and_duplicates(repo: Path):
    path = _write(repo, "name: !!python/name:os.system\nprofiles: {synth: {}, paper: {}}\n")
    with pytest.raises(StudyValidationError, match="not valid YAML"):
        load_study(path)
    path = _write(repo, "name: a\nname: b\nprofiles: {synth: {}, paper: {}}\n")
    with pytest.raises(StudyValidationError, match="duplicate key 'name'"):
        load_study(path)
    with pytest.raises(FileNotFoundError):
        load_study(repo / "studies" / "nope.yaml")


def test_resolved_dump_round_trips(repo: Path):
    import yaml

    s = load_study(repo / "studies" / "demo.yaml")
    plain = yaml.safe_load(s.to_yaml())
    assert plain["profile"] == "synth" and "source_file" not in plain
    assert plain["space"]["sched.lr"] == {"grid": [0.001, 0.003]}


def test_override_values():
    assert override_value(True) == "true" and override_value(None) == "null"
    assert override_value([1, "a"]) == "[1,a]"
    assert override_value("a b") == "'a b'"
    assert override_value(1e-5) == "1e-05"
    assert to_overrides({"trainer": {"epochs": 2}, "method": "pll"}) == [
        "method=pll",
        "trainer.epochs=2",
    ]


def test_the_runner_reads_it(repo: Path):
    from fer_core.tune.spec import spec_from_study

    spec = spec_from_study(load_study(repo / "studies" / "demo.yaml", "paper", ["seeds=[0,1]"]))
    assert spec.study_name == "demo-paper" and spec.gpu == 1 and spec.seeds == [0, 1]
    assert spec.dataset == "rafdb" and spec.epochs == 3
    assert spec.space["sched.lr"] == {"grid": [0.001, 0.003]}


ROW_PROFILES = """\
name: rows
base: {method: pll}
profiles:
  synth: {data: synthfer}
  paper: {data: rafdb}
ablation:
  baseline: plain
  rows:
    - {name: plain, set: {method.decoder.enabled: false}}
    - name: big
      set: {method.decoder.enabled: true}
      profiles: {synth: {method.decoder: {dim: 64}, trainer.epochs: 2}}
"""


def test_a_row_s_own_profile_settings_apply_to_that_row_under_that_profile(repo: Path):
    path = _write(repo, ROW_PROFILES)
    synth = load_study(path, "synth").ablation_rows()
    assert synth["plain"] == {"method.decoder.enabled": False}
    assert synth["big"] == {
        "method.decoder.enabled": True,
        "method.decoder.dim": 64,
        "trainer.epochs": 2,
    }
    assert load_study(path, "paper").ablation_rows()["big"] == {"method.decoder.enabled": True}
    # a knob the row's config lacks is caught by the knob check, at the row
    _write(repo, ROW_PROFILES.replace("dim: 64", "dimm: 64"))
    with pytest.raises(StudyValidationError, match="dimm"):
        load_study(path, "synth")
    _write(repo, ROW_PROFILES.replace("profiles: {synth:", "profiles: {cpu:"))
    with pytest.raises(StudyValidationError, match=r"row 'big' sets profiles \['cpu'\].*synth"):
        load_study(path, "synth", check_knobs=False)
