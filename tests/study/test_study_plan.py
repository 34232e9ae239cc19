"""plan_trials / format_plan: configurations x seeds, overrides, ablation rows, placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest

from fer_core.study import format_plan, load_study, plan_trials
from fer_core.study.plan import SAMPLED


def _study(tmp_path: Path, body: str, overrides=()):
    (tmp_path / "studies").mkdir(exist_ok=True)
    path = tmp_path / "studies" / "p.yaml"
    path.write_text("name: p\nprofiles: {synth: {data: synthfer}, paper: {data: rafdb}}\n" + body)
    return load_study(path, overrides=list(overrides), check_knobs=False)


def test_grid_times_seeds(tmp_path: Path):
    s = _study(
        tmp_path,
        "base: {method: ce, trainer.epochs: 2}\n"
        "space:\n  sched.lr: {grid: [0.001, 0.003]}\n  trainer.batch_size: {int: [16, 32], q: 16}\n"
        "seeds: [0, 1, 2]\nresources: {cpu: 0.5, gpu: 0.25, max_concurrent: 4}\n",
    )
    plan = plan_trials(s)
    assert plan.num_configs == 4 and plan.n_trials == 12
    assert [(t.config_id, t.seed) for t in plan.trials[:4]] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    first = plan.trials[0]
    assert first.params == {"sched.lr": 0.001, "trainer.batch_size": 16}
    assert first.overrides == [
        "method=ce",
        "data=synthfer",
        "trainer.epochs=2",
        "sched.lr=0.001",
        "trainer.batch_size=16",
    ]
    assert len(plan.configs()) == 4
    text = format_plan(plan)
    assert "4 configurations x 3 seed(s) [0, 1, 2] = 12 trials" in text
    assert "cpu 0.5, gpu 0.25" in text and "peak ask: cpu 2, gpu 1" in text


def test_searched_knob_replaces_base_value(tmp_path: Path):
    s = _study(tmp_path, "base: {sched.lr: 0.1}\nspace:\n  sched.lr: {grid: [0.2]}\n")
    assert plan_trials(s).trials[0].overrides == ["data=synthfer", "sched.lr=0.2"]


def test_conditional_grid_merges_duplicates(tmp_path: Path):
    s = _study(
        tmp_path,
        "space:\n"
        "  method.decoder.enabled: {choice: [true, false]}\n"
        "  method.uniform.enabled: {choice: [true, false], when: {method.decoder.enabled: true}}\n",
    )
    plan = plan_trials(s)
    assert [t.params for t in plan.trials] == [
        {"method.decoder.enabled": True, "method.uniform.enabled": True},
        {"method.decoder.enabled": True, "method.uniform.enabled": False},
        {"method.decoder.enabled": False},
    ]


def test_sampler_placeholders(tmp_path: Path):
    s = _study(
        tmp_path,
        "space:\n  sched.lr: {loguniform: [1.0e-5, 1.0e-2]}\n"
        "algorithm: {name: tpe, seed: 3}\nnum_samples: 5\nseeds: 2\n",
    )
    plan = plan_trials(s)
    assert plan.num_configs == 5 and plan.n_trials == 10
    assert all(t.sampled and t.params == {"sched.lr": SAMPLED} for t in plan.trials)
    assert all("sched.lr" not in " ".join(t.overrides) for t in plan.trials)
    assert "sampled by tpe at run time" in format_plan(plan)
    # -o num_samples changes the count
    assert plan_trials(_study(tmp_path, "", ["num_samples=2"])).num_configs == 1  # grid: 1 config


@pytest.mark.parametrize(
    ("ablation", "names"),
    [
        (
            "ablation:\n  baseline: full\n  rows:\n"
            "    - {name: vanilla, set: {method.decoder.enabled: false}}\n"
            "    - {name: full, set: {}}\n",
            ["vanilla", "full"],
        ),
        (
            "ablation:\n  factors: {decoder: method.decoder.enabled, uniform: method.uniform.enabled}\n",
            ["baseline", "no_decoder", "no_uniform"],
        ),
        (
            "ablation:\n  design: factorial\n"
            "  factors: {decoder: method.decoder.enabled, uniform: method.uniform.enabled}\n",
            [
                "decoder=on,uniform=on",
                "decoder=on,uniform=off",
                "decoder=off,uniform=on",
                "decoder=off,uniform=off",
            ],
        ),
    ],
)
def test_ablation_rows(tmp_path: Path, ablation: str, names: list[str]):
    s = _study(tmp_path, "base: {method: pll}\nseeds: [0, 1]\n" + ablation)
    plan = plan_trials(s)
    assert [t.row for t in plan.configs()] == names
    assert plan.n_trials == 2 * len(names)
    assert s.ablation["baseline"] in names
    text = format_plan(plan)
    assert f"{len(names)} ablation rows" in text and f"row={names[0]}" in text


def test_ablation_row_overrides(tmp_path: Path):
    s = _study(
        tmp_path,
        "base: {method: pll}\nablation:\n  rows:\n"
        "    - {name: 'off', set: {method: {decoder: {enabled: false}}}}\n",
    )
    (trial,) = plan_trials(s).trials
    assert trial.overrides == ["method=pll", "data=synthfer", "method.decoder.enabled=false"]
    assert s.ablation_rows() == {"off": {"method.decoder.enabled": False}}


def test_quickstart_plan():
    repo = Path(__file__).resolve().parents[2]
    plan = plan_trials(load_study(repo / "studies" / "quickstart.yaml", check_knobs=False))
    assert plan.num_configs == 4, "the quickstart is four configurations"


def test_unquoted_boolean_row_name_is_explained(tmp_path: Path):
    with pytest.raises(ValueError, match="quote the name"):
        _study(tmp_path, "ablation:\n  rows:\n    - {name: off}\n")
