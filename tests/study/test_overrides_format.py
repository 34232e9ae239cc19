"""The one override formatter: Hydra's own parser reads every value back unchanged, never a sweep."""

from __future__ import annotations

import math

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from fer_core.overrides import override_value, to_overrides
from fer_core.tune import spec as tune_spec
from fer_core.tune import trainable

VALUES = [
    # strings that need quoting
    "a,b",
    "a, b, c",
    "two words",
    "  padded  ",
    "k=v",
    "a=b,c=d",
    "it's",
    'say "hi"',
    "both ' and \"",
    "back\\slash",
    "trailing\\",
    "\\",
    "\\\\",
    "\\'",
    "x\\'y",
    "'quoted'",
    '"dq"',
    "[not, a, list]",
    "{not: a dict}",
    "f(x)",
    "a:b",
    "100%",
    "tab\tand\nnewline",
    "",
    " ",
    "näive — ünïcode",
    "näive",
    "日本語",
    # strings that look like other types and must stay strings
    "1",
    "-1",
    "0.1",
    "1e-4",
    "1_000",
    "true",
    "True",
    "FALSE",
    "null",
    "Null",
    "inf",
    "-inf",
    "nan",
    "NaN",
    # plain strings that stay unquoted
    "pll",
    "vit_tiny_cpu",
    "/data/rafdb",
    "runs/a-b.c",
    "e5",
    "infinity",
    # scalars
    None,
    True,
    False,
    0,
    -3,
    10**12,
    0.1,
    1e-4,
    1e-5,
    -2.5,
    1e16,
    0.0,
    math.inf,
    -math.inf,
    # lists
    [],
    [1, 2, 3],
    [0.1, "a,b", None, True],
    ["a,b", "c d", "it's"],
    [[1, 2], ["x,y", []], [[None]]],
    ["1", "true", "null", ""],
    # mappings
    {"a": 1, "b": "x,y", "c": [1, "2"]},
]


def _parse(text: str):
    return OverridesParser.create().parse_override(f"k={text}")


@pytest.mark.parametrize("value", VALUES, ids=[repr(v) for v in VALUES])
def test_hydra_reads_back_the_same_value(value):
    parsed = _parse(override_value(value))
    assert not parsed.is_sweep_override()
    assert parsed.value() == value
    assert type(parsed.value()) is type(value)


def test_nan_round_trips():
    parsed = _parse(override_value(math.nan))
    assert not parsed.is_sweep_override() and math.isnan(parsed.value())


def test_plain_strings_stay_readable():
    assert override_value("pll") == "pll"
    assert override_value("/data/rafdb") == "/data/rafdb"
    assert override_value("a,b") == "'a,b'"
    assert override_value("1") == "'1'"
    assert override_value("it's") == "'it\\'s'"
    assert override_value("a\\b") == "'a\\b'"


def test_unwritable_mapping_key_is_refused():
    with pytest.raises(ValueError, match="mapping key 'a b'"):
        override_value({"a b": 1})


def test_trials_and_validation_share_the_formatter():
    assert tune_spec.to_overrides is to_overrides
    out = trainable.trial_overrides([], {"data.root": "/d/a, b", "method.tag": "1"}, 0)
    assert out[:2] == ["data.root='/d/a, b'", "method.tag='1'"]
    parsed = [_parse(o.partition("=")[2]) for o in out[:2]]
    assert [p.value() for p in parsed] == ["/d/a, b", "1"]


@pytest.mark.parametrize("root", ["/tmp/raf, db", "/tmp/it's here", "/tmp/näive — ünïcode"])
def test_composed_config_keeps_a_string_knob(root):
    from fer_core.engine.build import compose

    cfg = compose(to_overrides({"data": "rafdb", "data.root": root}))
    assert cfg.data.root == root
