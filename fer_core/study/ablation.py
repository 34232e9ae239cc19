"""Ablation blocks: named rows of knob settings, or factors expanded one-factor / factorial.

001 Table VIII (decoder / L_uniform / revision confidence) is the model case: rows run as a grid
over a categorical ``row`` parameter (INTERFACES.md), the ``baseline`` row is the reference of
the report's significance tests.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from fer_core.study.distributions import Strict, check_knob_path


class AblationRow(Strict):
    """One named row of an ablation table: the knob settings that make it.

    ``profiles`` adds settings to this row alone under a profile (``profiles: {synth: {...}}``):
    the knobs only this row's method has, at that profile's size (the SimFLE row of
    ``ssl_protocols`` sets FaceMAE's CPU size under ``synth``, knobs the BYOL rows lack). They are
    applied after ``set`` and checked on this row's composed config like ``set``."""

    name: str
    set: dict[str, Any] = Field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    note: str | None = None

    def settings(self, profile: str) -> dict[str, Any]:
        """``set`` plus this profile's additions (nested mappings flattened to dotted keys)."""
        from fer_core.overrides import flatten

        return {**flatten(self.set), **flatten(self.profiles.get(profile) or {})}

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v: Any) -> Any:
        if isinstance(v, bool):
            raise ValueError(
                f"row name {v!r}: YAML reads on/off/yes/no/true/false as booleans; quote the "
                "name (name: 'off')"
            )
        return str(v) if isinstance(v, (int, float)) else v


class Factor(Strict):
    """A factor of a generated ablation: a knob and its values (the first is the baseline's)."""

    path: str
    values: list[Any] = Field(default_factory=lambda: [True, False], min_length=2)

    _path = field_validator("path")(check_knob_path)


class Ablation(Strict):
    """Named rows (``rows``), or ``factors`` expanded by ``design`` into rows.

    ``one_factor``: a ``baseline`` row (every factor at its first value) plus one row per other
    value of each factor, named ``no_<factor>`` (a true/false factor switched off) or
    ``<factor>=<value>``. ``factorial``: every combination, named
    ``<f1>=<v1>,<f2>=<v2>``. Ablations run as a grid over the categorical ``row`` parameter.
    """

    baseline: str | None = None
    rows: list[AblationRow] | None = None
    factors: dict[str, str | Factor] | None = None
    design: Literal["one_factor", "factorial"] = "one_factor"

    @model_validator(mode="after")
    def _check(self) -> Ablation:
        if (self.rows is None) == (self.factors is None):
            raise ValueError("ablation: give either rows or factors (with design), not both")
        if self.factors is not None and not self.factors:
            raise ValueError("ablation.factors: an empty mapping is not allowed")
        if self.rows is not None and not self.rows:
            raise ValueError("ablation.rows: an empty list is not allowed")
        names = [r.name for r in self.expanded_rows()]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"ablation.rows: row names must be unique; repeated: {dup}")
        if self.baseline is not None and self.baseline not in names:
            raise ValueError(
                f"ablation.baseline: {self.baseline!r} is not a row; use one of {names}"
            )
        return self

    def factor_map(self) -> dict[str, Factor]:
        return {
            k: Factor(path=v) if isinstance(v, str) else v for k, v in (self.factors or {}).items()
        }

    def expanded_rows(self) -> list[AblationRow]:
        """The rows to run, factors expanded (``rows`` as given otherwise)."""
        if self.rows is not None:
            return list(self.rows)
        factors = self.factor_map()
        base = {f.path: f.values[0] for f in factors.values()}
        out = [AblationRow(name="baseline", set=dict(base))]
        if self.design == "one_factor":
            for fname, f in factors.items():
                for v in f.values[1:]:
                    label = (
                        f"no_{fname}"
                        if v is False and f.values[0] is True
                        else f"{fname}={_fmt(v)}"
                    )
                    out.append(AblationRow(name=label, set={**base, f.path: v}))
            return out
        out = []
        names = list(factors)
        for combo in itertools.product(*(factors[n].values for n in names)):
            label = ",".join(f"{n}={_fmt(v)}" for n, v in zip(names, combo))
            out.append(
                AblationRow(name=label, set={factors[n].path: v for n, v in zip(names, combo)})
            )
        return out

    def baseline_name(self) -> str:
        rows = self.expanded_rows()
        if self.baseline:
            return self.baseline
        if self.factors is not None and self.design == "factorial":
            return rows[0].name
        return rows[0].name


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)
