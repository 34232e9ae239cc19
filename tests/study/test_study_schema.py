"""Study schema: distributions, ablations, algorithm/scheduler options, did-you-mean."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fer_core.study.errors import unknown_keys
from fer_core.study.schema import Ablation, Algorithm, Distribution, Scheduler, StudyFile


def _study(**kw):
    data = {"name": "s", "profiles": {"synth": {}, "paper": {}}, **kw}
    return StudyFile.model_validate(data)


@pytest.mark.parametrize(
    ("entry", "values"),
    [
        ({"grid": [1, 2, 3]}, [1, 2, 3]),
        ({"choice": ["a", "b"]}, ["a", "b"]),
        ({"int": [2, 4]}, [2, 3, 4]),
        ({"int": [0, 10], "q": 5}, [0, 5, 10]),
        ({"uniform": [0.0, 0.9], "q": 0.3}, [0.0, 0.3, 0.6, 0.9]),
        ({"uniform": [0.0, 1.0]}, None),
        ({"loguniform": [1e-4, 1e-2]}, None),
    ],
)
def test_distribution_values(entry, values):
    d = Distribution.model_validate(entry)
    got = d.grid_values()
    assert got == pytest.approx(values) if values is not None else got is None
    assert d.contains(d.representative())
    assert Distribution.model_validate(d.plain()) == d


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"uniform": [1.0, 0.0]}, "low bound must be below the high bound"),
        ({"loguniform": [0.0, 1.0]}, "log-scale bounds must be > 0"),
        ({"int": [5, 1]}, "low bound must be below"),
        ({"grid": []}, "an empty list is not allowed"),
        ({"grid": [1], "uniform": [0, 1]}, "exactly one of"),
        ({}, "exactly one of"),
        ({"uniform": [0, 1], "q": -0.1}, "the step must be > 0"),
        ({"uniform": [0, 1], "q": 2}, "larger than the range"),
        ({"int": [0, 10], "q": 0.5}, "use a whole step"),
        ({"loguniform": [1e-4, 1e-2], "q": 1e-4}, "a step on a log scale"),
        ({"uniform": [0, 1, 2]}, "give [low, high]"),
        ({"choice": [{"a": 1}]}, "values are scalars"),
        ({"grid": [1, 2], "q": 1}, "q and log apply to ranges only"),
        ({"uniform": [1, 2], "log": True}, "use loguniform"),
        ({"grid": [1], "when": {"_target_": 1}}, "_target_"),
    ],
)
def test_bad_distribution(entry, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Distribution.model_validate(entry)


def test_unknown_key_suggests():
    found = unknown_keys(StudyFile, {"name": "x", "num_sample": 3, "space": {"a": {"unifrom": 1}}})
    msgs = {loc: msg for loc, msg in found}
    assert "Did you mean 'num_samples'?" in msgs[("num_sample",)]
    assert "Did you mean 'uniform'?" in msgs[("space", "a", "unifrom")]


def test_profiles_required():
    with pytest.raises(ValidationError, match="'paper'"):
        StudyFile.model_validate({"name": "s", "profiles": {"synth": {}}})


def test_selection_metric_is_not_test():
    with pytest.raises(ValidationError, match="select on a val/ metric"):
        _study(metric="test/acc")


def test_seed_count_shorthand_and_duplicates():
    assert _study(seeds=3).seeds == [0, 1, 2]
    with pytest.raises(ValidationError, match="repeats a seed"):
        _study(seeds=[1, 1])


def test_grid_needs_enumerable_space():
    with pytest.raises(ValidationError, match="cannot be a grid"):
        _study(space={"sched.lr": {"loguniform": [1e-4, 1e-2]}})
    ok = _study(space={"sched.lr": {"loguniform": [1e-4, 1e-2]}}, algorithm="tpe")
    assert ok.algorithm.name == "tpe"


def test_when_must_name_an_earlier_value():
    space = {"a": {"choice": [True, False]}, "b": {"grid": [1, 2], "when": {"a": "yes"}}}
    with pytest.raises(ValidationError, match="a value a never takes"):
        _study(space=space)


def test_ablation_one_factor_and_factorial():
    one = Ablation.model_validate(
        {"factors": {"dec": "method.decoder.enabled", "uni": "method.uniform.enabled"}}
    )
    rows = one.expanded_rows()
    assert [r.name for r in rows] == ["baseline", "no_dec", "no_uni"]
    assert rows[1].set == {"method.decoder.enabled": False, "method.uniform.enabled": True}
    assert one.baseline_name() == "baseline"
    fac = Ablation.model_validate(
        {
            "design": "factorial",
            "factors": {
                "dec": "method.decoder.enabled",
                "k": {"path": "method.k", "values": [2, 3]},
            },
        }
    )
    assert len(fac.expanded_rows()) == 4
    with pytest.raises(ValidationError, match="not a row"):
        Ablation.model_validate({"baseline": "nope", "rows": [{"name": "a"}]})
    with pytest.raises(ValidationError, match="must be unique"):
        Ablation.model_validate({"rows": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ValidationError, match="either rows or factors"):
        Ablation.model_validate({})


def test_algorithm_and_scheduler_options():
    assert Algorithm.model_validate({"name": "tpe", "seed": 1, "n_startup_trials": 3}).options == {
        "seed": 1,
        "n_startup_trials": 3,
    }
    with pytest.raises(ValidationError, match="Did you mean 'population_size'"):
        Algorithm.model_validate({"name": "gwo", "populaton_size": 4})
    with pytest.raises(ValidationError, match="'blarg'"):
        Algorithm.model_validate({"name": "blarg"})
    Scheduler.model_validate({"name": "asha", "grace_period": 1, "max_t": 4})
    with pytest.raises(ValidationError, match="grace_period"):
        Scheduler.model_validate({"name": "asha", "grace_period": 5, "max_t": 4})
    with pytest.raises(ValidationError, match="reduction_factor"):
        Scheduler.model_validate({"name": "asha", "reduction_factor": 1})
    with pytest.raises(ValidationError, match="not an option of 'median'"):
        Scheduler.model_validate({"name": "median", "max_t": 3})


def test_resources():
    assert _study(resources={"gpu": 0.25}).resources.gpu == 0.25
    with pytest.raises(ValidationError, match="whole GPUs"):
        _study(resources={"gpu": 1.5})
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        _study(resources={"max_concurrent": 0})


def test_report_checks():
    with pytest.raises(ValidationError, match="not a searched knob"):
        _study(space={"a": {"grid": [1]}}, report={"kind": "sensitivity", "x": "b"})
    with pytest.raises(ValidationError, match="needs an ablation block"):
        _study(report={"kind": "ablation"})


def test_report_baseline_is_a_value_of_the_swept_knob():
    space = {"method.uniform.tau": {"grid": [0.001, 0.005, 0.01]}}
    ok = _study(space=space, report={"kind": "sensitivity", "baseline": 5e-3})
    assert ok.report.baseline == 5e-3
    with pytest.raises(ValidationError, match=r"report.baseline: 0.02 is not a value of .*0.005"):
        _study(space=space, report={"kind": "sensitivity", "baseline": 0.02})
    with pytest.raises(ValidationError, match="report.baseline: 0.5 is outside"):
        _study(
            space={"optim.lr": {"loguniform": [1e-4, 1e-2]}},
            algorithm={"name": "random"},
            report={"baseline": 0.5},
        )
    rows = {"rows": [{"name": "a", "set": {}}, {"name": "b", "set": {"x.y": 1}}]}
    with pytest.raises(ValidationError, match="ablation.baseline"):
        _study(ablation=rows, report={"kind": "ablation", "baseline": "a"})
