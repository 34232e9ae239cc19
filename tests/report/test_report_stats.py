"""Seed statistics equal numpy/scipy's (INTERFACES.md: ddof=1, Welch, U only with >= 5 seeds, Holm)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fer_core.report import stats


def test_summarize_uses_ddof_1():
    vals = [0.91, 0.93, 0.92, 0.95]
    s = stats.summarize(vals)
    assert s.n == 4
    assert s.mean == pytest.approx(np.mean(vals), abs=1e-15)
    assert s.std == pytest.approx(np.std(vals, ddof=1), abs=1e-15)
    one = stats.summarize([0.5])
    assert one.mean == 0.5 and math.isnan(one.std)
    assert stats.summarize([]).n == 0
    assert stats.summarize([0.1, float("nan"), 0.3]).n == 2


def test_welch_equals_scipy_and_needs_two_seeds():
    a, b = [0.85, 0.855, 0.848], [0.88, 0.884, 0.879, 0.881]
    assert stats.welch_p(a, b) == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue)
    assert math.isnan(stats.welch_p([0.8], b))


def test_mannwhitney_only_with_five_seeds_each():
    a = [0.80, 0.81, 0.82, 0.83, 0.84]
    b = [0.85, 0.86, 0.87, 0.88, 0.89]
    expected = sps.mannwhitneyu(a, b, alternative="two-sided").pvalue
    assert stats.mannwhitney_p(a, b) == pytest.approx(expected)
    assert math.isnan(stats.mannwhitney_p(a[:4], b))


def test_holm_known_values_and_nan():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(.., 2*0.03), max(.., 1*0.04)
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = stats.holm([0.2, float("nan"), 0.6])
    assert out[0] == pytest.approx(0.4) and math.isnan(out[1]) and out[2] == pytest.approx(0.6)
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_compare_column_holm_within_column():
    groups = {
        "a": [0.80, 0.81, 0.805],
        "b": [0.86, 0.87, 0.865],
        "base": [0.87, 0.88, 0.875],
        "empty": [],
    }
    comp = stats.compare_column(groups, "base")
    raw = [sps.ttest_ind(groups[n], groups["base"], equal_var=False).pvalue for n in ("a", "b")]
    adj = stats.holm(raw)
    assert comp["a"].p_welch == pytest.approx(raw[0])
    assert comp["a"].p_welch_holm == pytest.approx(adj[0])
    assert comp["b"].p_welch_holm == pytest.approx(adj[1])
    assert comp["a"].delta == pytest.approx(np.mean(groups["a"]) - np.mean(groups["base"]))
    assert comp["base"].delta == 0.0 and math.isnan(comp["base"].p_welch)
    assert math.isnan(comp["empty"].delta) and not comp["empty"].significant()
    assert comp["a"].significant() == (adj[0] < 0.05)
