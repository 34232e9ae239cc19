"""Seed statistics and significance tests, as INTERFACES.md "Statistics in reports" fixes them.

* mean and standard deviation over seeds, ``ddof=1`` (NaN for a single seed);
* Welch's t-test (``scipy.stats.ttest_ind(..., equal_var=False)``) of each row against the
  baseline row, needing at least 2 seeds on both sides;
* the Mann-Whitney U test (two-sided) only where both groups have at least
  :data:`MIN_SEEDS_MWU` = 5 seeds;
* Holm's step-down correction within each table column (over the rows compared to the baseline),
  separately for each test; a cell is marked significant when its Holm-adjusted Welch p-value
  is below ``alpha`` (0.05);
* the best value of a column and every value not significantly different from it (Welch against
  the best, Holm within the column, p >= ``alpha``) are marked together (:func:`tied_with_best`),
  so that a report never crowns one value on noise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_SEEDS_MWU = 5
ALPHA = 0.05


@dataclass(frozen=True)
class Summary:
    """Mean and std (ddof=1) of one cell's seed values; ``n`` seeds."""

    mean: float
    std: float
    n: int


def summarize(values: Sequence[float]) -> Summary:
    """Mean and sample standard deviation (ddof=1) of ``values`` [n]; NaN where undefined."""
    arr = np.asarray([v for v in values if v is not None and not _isnan(v)], dtype=float)
    if arr.size == 0:
        return Summary(math.nan, math.nan, 0)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else math.nan
    return Summary(float(np.mean(arr)), std, int(arr.size))


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t-test of ``a`` vs ``b``; NaN with fewer than 2 values each."""
    a, b = _clean(a), _clean(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance on both sides -> NaN
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def mannwhitney_p(a: Sequence[float], b: Sequence[float], min_n: int = MIN_SEEDS_MWU) -> float:
    """Two-sided Mann-Whitney U p-value; NaN unless both groups have at least ``min_n`` values."""
    a, b = _clean(a), _clean(b)
    if a.size < min_n or b.size < min_n:
        return math.nan
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count in ``m``.

    Sorted ascending, ``p_adj[(i)] = max_{j <= i} min(1, (m - j + 1) * p[(j)])`` (1-based ``j``).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(~np.isnan(p))
    m = idx.size
    running = 0.0
    for rank, i in enumerate(idx[np.argsort(p[idx], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


@dataclass(frozen=True)
class Comparison:
    """One row against the baseline: delta of means and raw / Holm-adjusted p-values."""

    delta: float
    p_welch: float
    p_mwu: float
    p_welch_holm: float = math.nan
    p_mwu_holm: float = math.nan

    def significant(self, alpha: float = ALPHA) -> bool:
        return not _isnan(self.p_welch_holm) and self.p_welch_holm < alpha


def compare_column(
    groups: dict[str, Sequence[float]], baseline: str, alpha: float = ALPHA
) -> dict[str, Comparison]:
    """Compare every group of one table column with ``groups[baseline]``, Holm within the column.

    ``groups`` maps row name -> seed values of that cell (may be empty for pending cells).
    The baseline row itself gets ``delta = 0`` and NaN p-values. Returns row name -> Comparison.
    """
    del alpha  # significance is decided by Comparison.significant(alpha)
    base = list(groups.get(baseline, []))
    base_mean = summarize(base).mean
    names = [n for n in groups if n != baseline]
    deltas = {n: summarize(groups[n]).mean - base_mean for n in names}
    pw = [welch_p(groups[n], base) for n in names]
    pu = [mannwhitney_p(groups[n], base) for n in names]
    pw_h, pu_h = holm(pw), holm(pu)
    out = {baseline: Comparison(0.0, math.nan, math.nan)} if baseline in groups else {}
    for k, n in enumerate(names):
        out[n] = Comparison(deltas[n], pw[k], pu[k], pw_h[k], pu_h[k])
    return out


def tied_with_best(
    groups: dict[str, Sequence[float]], best: str, alpha: float = ALPHA
) -> dict[str, float]:
    """Holm-adjusted Welch p-value of every group against the best one (NaN where untestable).

    A group whose adjusted p is at least ``alpha`` is *not significantly different* from the best
    (reports mark it beside the best instead of bolding one value on noise). Holm runs within the
    column, over the groups compared with the best; the best itself gets NaN.
    """
    del alpha
    names = [n for n in groups if n != best]
    raw = [welch_p(groups[n], groups.get(best, [])) for n in names]
    out = {best: math.nan} if best in groups else {}
    out.update(zip(names, holm(raw)))
    return out


def _clean(values: Sequence[float]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and not _isnan(v)], dtype=float)


def _isnan(v: object) -> bool:
    try:
        return math.isnan(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
