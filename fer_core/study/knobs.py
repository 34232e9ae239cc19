"""Check that every knob path of a resolved study exists in the trainer config.

Composes the trainer config (``fer_core.engine.build.compose``) once with the study's trainer
overrides plus one representative value per searched knob, once more per conditional knob
(its ``when`` values applied), once per value of a searched config-group choice
(``model: {choice: [...]}``) and once per ablation row. A ``ConfigError`` names the bad key; it is
reported at the study key where that knob came from (space, ablation row, base or profile).
"""

from __future__ import annotations

import re
from typing import Any

from fer_core.study.errors import Loc, StudyError, key_str, line_of
from fer_core.study.loader import ResolvedStudy, to_overrides


def _is_group_choice(path: str) -> bool:
    parts = path.split(".")
    return len(parts) == 1 or (len(parts) == 3 and parts[0] == "stages")


def knob_scenarios(resolved: ResolvedStudy) -> list[tuple[Loc, dict[str, Any]]]:
    """(where the settings come from, knob settings) to compose on top of the study's base."""
    dists = resolved.distributions()
    scenarios: list[tuple[Loc, dict[str, Any]]] = []
    reps = {k: d.representative() for k, d in dists.items() if not d.when}
    scenarios.append((("space",) if dists else ("base",), reps))
    for knob, d in dists.items():
        if d.when:
            scenarios.append((("space", knob), {**reps, **d.when, knob: d.representative()}))
        if _is_group_choice(knob) and d.is_categorical:
            for v in (d.grid_values() or [])[1:]:
                scenarios.append((("space", knob), {**reps, knob: v}))
    for i, (name, settings) in enumerate(resolved.ablation_rows().items()):
        scenarios.append((("ablation", "rows", i), {"__row__": name, **settings}))
    from fer_core.tune.reference import reference_settings  # no trainer imports

    ref = reference_settings(resolved)
    if ref is not None:  # report.reference composes on its own (the base minus replaced groups)
        own = dict((resolved.report or {}).get("reference", {}).get("set") or {})
        base = {k: v for k, v in ref.items() if k not in own}
        scenarios.append((("report", "reference", "set"), {"__base__": base, **own}))
    return scenarios


def _blame(message: str, settings: dict[str, Any], where: Loc, resolved: ResolvedStudy) -> Loc:
    """The study key that holds the knob a ConfigError names (the first knob it mentions)."""
    found: list[tuple[int, int, str]] = []
    for knob in set(settings) | set(resolved.base):
        m = re.search(rf"(?<![\w.]){re.escape(knob)}(?![\w])", message)
        parts = knob.split(".", 2)
        if not m and len(parts) == 3 and parts[0] == "stages" and f"stage '{parts[1]}'" in message:
            # a stage's own knob (stages.<stage>.<key>) is named "stage '<stage>': ... '<key>'"
            m = re.search(rf"(?<![\w.]){re.escape(parts[2])}(?![\w])", message)
        if m:
            found.append((m.start(), -len(knob), knob))
    if not found:
        return where
    knob = min(found)[2]
    if knob in resolved.space:
        return ("space", knob)
    if knob in settings and where[0] == "ablation":
        return (*where, "set", knob)
    if knob in settings and where[0] == "report":
        return (*where, knob)
    return ("base", knob)


def _trainer_loc(knob: str, profile: str, lines: dict[Loc, int]) -> Loc:
    """Where a trainer override was written: the profile, the base, else ``-o`` (command line)."""
    parts = knob.split(".")
    for prefix in (("profiles", profile), ("base",)):
        for loc in ((*prefix, knob), (*prefix, *parts), (*prefix, parts[0], ".".join(parts[1:]))):
            if loc in lines:
                return loc
    return ("-o", knob)


def check_knob_paths(resolved: ResolvedStudy, lines: dict[Loc, int]) -> list[StudyError]:
    """Compose each scenario; every ConfigError becomes a StudyError. When all compose, the
    study's metric names are checked against what each scenario's method declares
    (``study/metrics.py``)."""
    from fer_core.engine.build import compose
    from fer_core.study.metrics import check_metric_names, declared_metrics

    file = resolved.source_file or resolved.name
    errors: list[StudyError] = []
    seen: set[tuple[str, str]] = set()
    named: list = []
    for where, settings in knob_scenarios(resolved):
        row = settings.get("__row__")
        own_base = settings.get("__base__")
        settings = {k: v for k, v in settings.items() if k not in ("__row__", "__base__")}
        merged = dict(resolved.base if own_base is None else own_base)
        merged.update(settings)
        try:
            cfg = compose(to_overrides(merged))
            check_config_data(cfg)
        except ValueError as exc:
            loc = _blame(str(exc), settings, where, resolved)
            if loc[:1] == ("base",) and len(loc) > 1:
                loc = _trainer_loc(loc[1], resolved.profile, lines)
            cmdline = loc[0] == "-o"
            name = f"-o {loc[1]}" if cmdline else key_str(loc)
            if (name, str(exc)) not in seen:
                seen.add((name, str(exc)))
                line = None if cmdline else line_of(lines, loc)
                msg = f"{exc} (profile {resolved.profile})"
                errors.append(StudyError(file, name, line, msg))
            continue
        try:
            names = declared_metrics(cfg)
        except Exception:  # noqa: BLE001 - a method refusing its settings fails at its own check
            continue
        if own_base is not None:
            continue  # the reference run reports its own method's metrics, not the study's
        label = f"ablation row {row!r}" if row else ("settings " + _short(settings))
        named.append((label, names))
    if not errors:
        errors += check_metric_names(resolved, lines, named)
    return errors


def check_config_data(cfg) -> None:
    """The values of a composed config's ``data`` group, and of each stage's, as the dataset
    checks them when it is built (``fer_core.data.check_data``): ``--dry-run`` refuses what the
    run would. A stage's error is prefixed ``stage '<name>': ``."""
    from omegaconf import DictConfig, OmegaConf

    from fer_core.data import check_data, dataset_kwargs

    def plain(node) -> dict:
        return (
            OmegaConf.to_container(node, resolve=True)
            if isinstance(node, DictConfig)
            else dict(node or {})
        )

    groups = [("", plain(cfg.get("data")))]
    for name, stage in (cfg.get("stages") or {}).items():
        groups.append((f"stage {name!r}: ", plain(plain(stage).get("data"))))
    for where, data in groups:
        name = data.pop("name", None)
        if name is None:
            continue
        allowed = dataset_kwargs(name)  # keys of the trainer's data group the builder does not take
        try:
            check_data(name, **{k: v for k, v in data.items() if k in allowed})
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None


def _short(settings: dict[str, Any]) -> str:
    text = " ".join(f"{k}={v}" for k, v in settings.items())
    return text if text and len(text) < 80 else (text[:77] + "..." if text else "as written")
