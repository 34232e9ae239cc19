"""The trials a study will run, without running anything (``fer-study run FILE --dry-run``).

``plan_trials(resolved) -> Plan``: configurations x seeds (INTERFACES.md: one Tune trial per
(configuration, seed), one Optuna trial per configuration), each with its trainer overrides.
Grids and ablations are enumerated fully (a conditional knob is dropped where its ``when`` does
not hold, and the duplicates this makes are merged); other algorithms get ``num_samples``
placeholder configurations whose values the searcher picks at run time.
``format_plan(plan) -> str`` is the text the dry run prints.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from fer_core.study.loader import ResolvedStudy, override_value, to_overrides

SAMPLED = "<sampled>"


@dataclass
class PlannedTrial:
    """One Tune trial: configuration ``config_id`` run with ``seed``.

    ``params``: knob path -> value (``"<sampled>"`` where the algorithm picks it at run time);
    ``row``: the ablation row name (None outside ablations); ``overrides``: every trainer
    override of the trial (the study's, then the configuration's), as ``key=value``.
    """

    config_id: int
    seed: int
    params: dict[str, Any]
    overrides: list[str]
    row: str | None = None
    sampled: bool = False


@dataclass
class Plan:
    """Everything ``--dry-run`` shows; ``trials`` lists configuration-major, then seed."""

    name: str
    profile: str
    metric: str
    mode: str
    algorithm: dict[str, Any]
    scheduler: dict[str, Any]
    seeds: list[int]
    num_configs: int
    trials: list[PlannedTrial]
    resources: dict[str, Any]
    trainer_overrides: list[str]
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_retries: int = 0

    @property
    def n_trials(self) -> int:
        return len(self.trials)

    def configs(self) -> list[PlannedTrial]:
        """The first trial of every configuration (one per Optuna trial)."""
        seen, out = set(), []
        for t in self.trials:
            if t.config_id not in seen:
                seen.add(t.config_id)
                out.append(t)
        return out


def grid_configs(resolved: ResolvedStudy) -> list[dict[str, Any]]:
    """Every configuration of a grid space (conditionals honoured, duplicates merged)."""
    return grid_points(resolved.distributions())


def grid_points(dists: dict[str, Any]) -> list[dict[str, Any]]:
    """The grid of ``knob -> Distribution`` in dry-run order (the product in the space's key
    order; conditionals honoured, duplicates merged). The study runner numbers configurations
    in this order too (``tune/storage.py``), so config ids agree everywhere."""
    if not dists:
        return [{}]
    keys = list(dists)
    values = []
    for k in keys:
        grid = dists[k].grid_values()
        if grid is None:
            raise ValueError(
                f"space.{k}: a continuous range cannot be a grid; give grid/choice values or a "
                "step q"
            )
        values.append(grid)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for combo in itertools.product(*values):
        params: dict[str, Any] = {}
        for k, v in zip(keys, combo):
            cond = dists[k].when or {}
            if all(params.get(ck) == cv for ck, cv in cond.items()):
                params[k] = v
        sig = repr(sorted((k, repr(v)) for k, v in params.items()))
        if sig not in seen:
            seen.add(sig)
            out.append(params)
    return out


def configurations(resolved: ResolvedStudy) -> list[tuple[str | None, dict[str, Any], bool]]:
    """(row, params, sampled) for each configuration, in run order."""
    rows = resolved.ablation_rows()
    if rows:
        return [(name, dict(settings), False) for name, settings in rows.items()]
    if resolved.algorithm.get("name", "grid") == "grid":
        return [(None, p, False) for p in grid_configs(resolved)]
    placeholder = {k: SAMPLED for k in resolved.space}
    return [(None, dict(placeholder), True) for _ in range(resolved.num_samples)]


def trial_overrides(resolved: ResolvedStudy, params: dict[str, Any]) -> list[str]:
    """The study's trainer overrides with the configuration's knob values set (no duplicates)."""
    merged = dict(resolved.base)
    merged.update({k: v for k, v in params.items() if v != SAMPLED})
    return to_overrides(merged)


def plan_trials(resolved: ResolvedStudy) -> Plan:
    """Enumerate configurations x seeds with their overrides and the resources they ask for."""
    trials: list[PlannedTrial] = []
    configs = configurations(resolved)
    for cid, (row, params, sampled) in enumerate(configs):
        overrides = trial_overrides(resolved, params)
        for seed in resolved.seeds:
            trials.append(
                PlannedTrial(
                    config_id=cid,
                    seed=seed,
                    params=dict(params),
                    overrides=list(overrides),
                    row=row,
                    sampled=sampled,
                )
            )
    return Plan(
        name=resolved.name,
        profile=resolved.profile,
        metric=resolved.metric,
        mode=resolved.mode,
        algorithm=dict(resolved.algorithm),
        scheduler=dict(resolved.scheduler),
        seeds=list(resolved.seeds),
        num_configs=len(configs),
        trials=trials,
        resources=dict(resolved.resources),
        trainer_overrides=list(resolved.trainer_overrides),
        space=dict(resolved.space),
        max_retries=int(resolved.failure.get("max_retries", 0)),
    )


def _num(x: Any) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def _opts(d: dict[str, Any]) -> str:
    name = d.get("name", "")
    rest = ", ".join(f"{k}={v}" for k, v in d.items() if k != "name")
    return f"{name} ({rest})" if rest else str(name)


def format_plan(plan: Plan) -> str:
    """The dry-run text: header, resources, study-wide overrides, space, one line per trial."""
    res = plan.resources
    cpu, gpu = float(res.get("cpu", 1.0)), float(res.get("gpu", 0.0))
    conc = res.get("max_concurrent")
    at_once = min(conc, plan.n_trials) if conc else plan.n_trials
    kind = "ablation rows" if any(t.row for t in plan.trials) else "configurations"
    lines = [
        f"study {plan.name} (profile {plan.profile}): {plan.num_configs} {kind} x "
        f"{len(plan.seeds)} seed(s) {plan.seeds} = {plan.n_trials} trials",
        f"algorithm {_opts(plan.algorithm)}; scheduler {_opts(plan.scheduler)}; "
        f"selects on {plan.metric} ({plan.mode}); retries on error: {plan.max_retries}",
        f"resources per trial: cpu {_num(cpu)}, gpu {_num(gpu)}; "
        f"concurrency {'at most ' + str(conc) if conc else 'as resources allow'} "
        f"(peak ask: cpu {_num(cpu * at_once)}, gpu {_num(gpu * at_once)})",
        "trainer overrides (every trial): " + (" ".join(plan.trainer_overrides) or "(none)"),
    ]
    if plan.space:
        lines.append("space:")
        for knob, entry in plan.space.items():
            body = ", ".join(f"{k}: {v}" for k, v in entry.items())
            lines.append(f"  {knob}: {{{body}}}")
    if plan.trials and plan.trials[0].sampled:
        lines.append(
            f"configurations are sampled by {plan.algorithm.get('name')} at run time "
            f"({plan.num_configs} of them); each runs once per seed"
        )
    lines.append("trials:")
    lines.append("  config  seed  settings")
    if plan.trials and plan.trials[0].sampled:  # placeholders: one line per seed
        knobs = " ".join(f"{k}={SAMPLED}" for k in plan.trials[0].params)
        ids = f"0-{plan.num_configs - 1}" if plan.num_configs > 1 else "0"
        for seed in plan.seeds:
            lines.append(f"  {ids:>6}  {seed:>4}  {knobs or '(study defaults)'}")
        return "\n".join(lines)
    for t in plan.trials:
        label = f"row={t.row} " if t.row else ""
        settings = " ".join(f"{k}={override_value(v)}" for k, v in t.params.items())
        lines.append(f"  {t.config_id:>6}  {t.seed:>4}  {label}{settings or '(study defaults)'}")
    return "\n".join(lines)
