"""Wolf coordinates: one Optuna distribution <-> a coordinate ``z`` in [-1, 1] (GWO, 004 Table 16).

0 is the centre of the range. Floats map linearly, ``log=True`` floats and ints in log space, ints
and stepped floats over ``[low - step/2, high + step/2]`` then rounded (equal-width bins, as
Optuna's RandomSampler), categoricals as positions over category indices (``k`` equal-width bins).
``decode`` is what the sampler suggests; ``encode`` places an existing value (an enqueued trial,
or a trial sampled under another range) at its bin centre.
"""

from __future__ import annotations

import math
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

__all__ = ["Coder"]


class Coder:
    """One distribution <-> wolf coordinate ``z`` in [-1, 1] (0 = centre of the range)."""

    def __init__(self, dist: BaseDistribution) -> None:
        self.dist = dist
        self.log = False
        if isinstance(dist, CategoricalDistribution):
            self.k = len(dist.choices)
            return
        if not isinstance(dist, (FloatDistribution, IntDistribution)):
            raise ValueError(
                f"GWOSampler: distribution {dist!r} is not supported; "
                "use FloatDistribution, IntDistribution or CategoricalDistribution"
            )
        step = dist.step if dist.step is not None else 0.0
        self.log = bool(dist.log)
        self.step = float(step)
        lo, hi = float(dist.low) - self.step / 2, float(dist.high) + self.step / 2
        if self.log:  # log floats have no step; log ints have step 1 and low >= 1, so lo >= 0.5
            lo, hi = math.log(lo), math.log(hi)
        self.lo, self.hi = lo, hi

    def decode(self, z: float) -> Any:
        """Coordinate -> parameter value (external representation)."""
        z = min(max(float(z), -1.0), 1.0)
        frac = (z + 1.0) / 2.0
        d = self.dist
        if isinstance(d, CategoricalDistribution):
            return d.choices[min(int(frac * self.k), self.k - 1)]
        u = self.lo + frac * (self.hi - self.lo)
        v = math.exp(u) if self.log else u
        if self.step:
            v = round((v - d.low) / self.step) * self.step + d.low
        v = min(max(v, d.low), d.high)
        return int(round(v)) if isinstance(d, IntDistribution) else float(v)

    def encode(self, value: Any) -> float:
        """Parameter value (external representation) -> coordinate (bin centre when discrete)."""
        d = self.dist
        if isinstance(d, CategoricalDistribution):
            idx = d.to_internal_repr(value)
            return 2.0 * (int(idx) + 0.5) / self.k - 1.0
        v = float(value)
        u = math.log(max(v, 1e-300)) if self.log else v
        z = 2.0 * (u - self.lo) / (self.hi - self.lo) - 1.0
        return min(max(z, -1.0), 1.0)
