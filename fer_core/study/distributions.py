"""Search-space distributions of study and search-space files (one knob each).

``{grid: [...]}``, ``{choice: [...]}``, ``{uniform: [lo, hi]}``, ``{loguniform: [lo, hi]}``,
``{int: [lo, hi]}`` (``log: true`` for a log-scaled int), a step ``q`` on uniform / int, and
``when: {other knob: value}`` for a conditional knob. ``fer_core.tune.spaces`` compiles them to
Optuna and Ray Tune.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

DIST_KINDS = ("grid", "choice", "uniform", "loguniform", "int")
_KNOB_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_knob_path(path: str) -> str:
    """A knob path is dotted identifiers (``method.revision.threshold``); no ``_target_``."""
    if not isinstance(path, str) or not _KNOB_RE.match(path):
        raise ValueError(
            f"{path!r} is not a knob path; use dotted names such as 'method.revision.threshold'"
        )
    if "_target_" in path.split("."):
        raise ValueError(f"{path!r}: overrides may not set '_target_' or any import path")
    return path


class Strict(BaseModel):
    """Base of every study model: unknown keys are errors (see ``errors.unknown_keys``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _pair(kind: str, value: list[float]) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{kind}: {value!r} is not allowed; give [low, high]")
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{kind}: {value!r} is not allowed; bounds must be finite numbers")
    return lo, hi


class Distribution(Strict):
    """One searched knob: exactly one of grid / choice / uniform / loguniform / int.

    ``q`` quantises a range (values lo, lo+q, ...); ``log`` log-scales an int range; ``when``
    makes the knob conditional: it is only sampled when every listed knob has the given value
    (those knobs must come earlier in the same space).
    """

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: list[float] | None = None
    loguniform: list[float] | None = None
    int_: list[int] | None = Field(default=None, alias="int")
    q: float | None = None
    log: bool = False
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Distribution:
        kinds = [k for k in DIST_KINDS if self.raw(k) is not None]
        if len(kinds) != 1:
            got = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a distribution needs exactly one of {', '.join(DIST_KINDS)} (got {got})"
            )
        kind = kinds[0]
        value = self.raw(kind)
        if kind in ("grid", "choice"):
            if not value:
                raise ValueError(f"{kind}: an empty list is not allowed; give at least one value")
            for v in value:
                if isinstance(v, (dict, list)):
                    raise ValueError(
                        f"{kind}: {v!r} is not allowed; values are scalars (numbers, strings, "
                        "booleans, null)"
                    )
            if self.q is not None or self.log:
                raise ValueError(f"{kind}: q and log apply to ranges only")
        else:
            lo, hi = _pair(kind, value)
            if kind == "int" and lo > hi or kind != "int" and lo >= hi:
                raise ValueError(
                    f"{kind}: [{lo}, {hi}] is not allowed; the low bound must be below the "
                    "high bound"
                )
            if kind == "loguniform" and lo <= 0:
                raise ValueError(
                    f"loguniform: [{lo}, {hi}] is not allowed; log-scale bounds must be > 0"
                )
            if self.log and kind != "int":
                raise ValueError(f"log: applies to int ranges; use loguniform instead of {kind}")
            if self.log and lo < 1:
                raise ValueError(f"int: [{lo}, {hi}] with log: true needs a low bound >= 1")
            if self.q is not None:
                if kind == "loguniform" or self.log:
                    raise ValueError(
                        "q: a step on a log scale is not supported (Optuna has none); use a "
                        "grid of values or uniform with q"
                    )
                if self.q <= 0:
                    raise ValueError(f"q: {self.q} is not allowed; the step must be > 0")
                if kind == "int" and float(self.q) != int(self.q):
                    raise ValueError(f"q: {self.q} is not allowed for int; use a whole step")
                if self.q > hi - lo and hi > lo:
                    raise ValueError(
                        f"q: {self.q} is larger than the range [{lo}, {hi}]; use a smaller step"
                    )
        if self.when is not None:
            if not self.when:
                raise ValueError("when: an empty mapping is not allowed; name a knob and a value")
            for k in self.when:
                check_knob_path(k)
        return self

    def raw(self, kind: str) -> Any:
        return self.int_ if kind == "int" else getattr(self, kind)

    @property
    def kind(self) -> str:
        return next(k for k in DIST_KINDS if self.raw(k) is not None)

    @property
    def is_categorical(self) -> bool:
        return self.kind in ("grid", "choice")

    def grid_values(self) -> list[Any] | None:
        """Every value (grid/choice, int ranges, ranges with ``q``), or None for a continuum."""
        kind, value = self.kind, self.raw(self.kind)
        if kind in ("grid", "choice"):
            return list(value)
        lo, hi = value
        if kind == "int":
            step = int(self.q or 1)
            return list(range(int(lo), int(hi) + 1, step))
        if self.q:
            n = int(math.floor((hi - lo) / self.q + 1e-9)) + 1
            return [round(lo + i * self.q, 12) for i in range(n)]
        return None

    def representative(self) -> Any:
        """A value inside the distribution (used to check knob paths against the config)."""
        values = self.grid_values()
        if values:
            return values[0]
        return self.raw(self.kind)[0]

    def contains(self, value: Any) -> bool:
        values = self.grid_values()
        if values is not None and self.is_categorical:
            return value in values
        lo, hi = self.raw(self.kind)
        return isinstance(value, (int, float)) and lo <= value <= hi

    def plain(self) -> dict[str, Any]:
        """The entry as the study file writes it (``int`` under its YAML name, no defaults)."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
