"""Recipe presets: the config group ``recipe`` (``fer_core/conf/recipe/<name>.yaml``).

A preset is an ordered list of named stages, with optional recipe-wide settings ``set`` that
every stage starts from (below the command line: ``model=vit_base`` replaces a preset's
``model: vit_tiny_cpu``). Each stage names its method (an option of the
``method`` group) and its protocol (``trainer.protocol``), may set other knobs of its own
(``set``: ``{key: value}`` in override form, e.g. ``model: vit_tiny_cpu``,
``method.decoder.depth: 2``), and, from the second stage on, says what it takes from an
earlier stage::

    stages:
      - {name: pretrain, method: mae, protocol: finetune}
      - name: finetune
        method: ce
        protocol: finetune
        init_from: {stage: pretrain, parts: [backbone]}

``parts`` are hand-off parts (``fer_core.methods.base.HANDOFF_PARTS``: backbone, head, teacher,
samples); whether the two methods have them is checked when the methods are built, before any
training (``engine/recipe.py``). This module only reads and checks the files; ``build.compose``
turns a preset plus the command line into one full config per stage. Errors are
:class:`fer_core.engine.build.ConfigError` naming the recipe, the stage, the key and what is allowed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECIPE_DIR = Path(__file__).resolve().parents[1] / "conf" / "recipe"
_STAGE_KEYS = ("name", "method", "protocol", "init_from", "set")


@dataclass(frozen=True)
class InitFrom:
    stage: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class PresetStage:
    name: str
    method: str
    protocol: str
    init_from: InitFrom | None = None
    set: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    stages: tuple[PresetStage, ...]
    set: dict[str, Any] = field(default_factory=dict)

    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]


def list_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def _error(msg: str) -> Exception:
    from fer_core.engine.build import ConfigError

    return ConfigError(msg)


def load_recipe(name: str) -> Recipe:
    """Read and check ``conf/recipe/<name>.yaml``; raises ``ConfigError`` on any problem."""
    names = list_recipes()
    if name not in names:
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise _error(f"unknown recipe {name!r}; allowed: {', '.join(names)}.{hint}")
    path = RECIPE_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    return parse_recipe(name, data, str(path))


def parse_recipe(name: str, data: Any, where: str = "") -> Recipe:
    """Check a recipe mapping (``{description?, stages: [...]}``) and return it typed."""
    from fer_core.engine.build import PROTOCOLS, group_options

    where = where or f"recipe {name!r}"
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list) or not data["stages"]:
        raise _error(f"{where}: a recipe needs a non-empty list 'stages'")
    extra = set(data) - {"stages", "description", "set"}
    if extra:
        raise _error(f"{where}: unknown keys {sorted(extra)}; allowed: description, set, stages")
    recipe_set = _settings(data.get("set"), where, "set")
    methods = group_options("method")
    stages: list[PresetStage] = []
    for i, raw in enumerate(data["stages"]):
        at = f"{where}: stages[{i}]"
        if not isinstance(raw, dict):
            raise _error(f"{at}: a stage is a mapping with keys {', '.join(_STAGE_KEYS)}")
        unknown = set(raw) - set(_STAGE_KEYS)
        if unknown:
            raise _error(f"{at}: unknown keys {sorted(unknown)}; allowed: {', '.join(_STAGE_KEYS)}")
        sname = str(raw.get("name") or "")
        if not sname.replace("_", "").replace("-", "").isalnum() or not sname[:1].isalpha():
            raise _error(f"{at}: name {sname!r} must start with a letter (letters, digits, _ -)")
        at = f"{where}: stage {sname!r}"
        if sname in [s.name for s in stages]:
            raise _error(f"{at}: the name is used twice")
        method = raw.get("method")
        if method not in methods:
            raise _error(f"{at}: method {method!r} is not allowed; allowed: {', '.join(methods)}")
        protocol = raw.get("protocol", "finetune")
        if protocol not in PROTOCOLS:
            raise _error(
                f"{at}: protocol {protocol!r} is not allowed; allowed: {', '.join(PROTOCOLS)}"
            )
        sets = _settings(raw.get("set"), at, f"stages.{sname}.method.<key>", own_method=True)
        init = raw.get("init_from")
        init_from = None
        if init is not None:
            init_from = _init_from(init, at)
        if protocol == "linear" and (init_from is None or "backbone" not in init_from.parts):
            raise _error(linear_without_backbone(at, first=not stages))
        stages.append(PresetStage(sname, str(method), str(protocol), init_from, dict(sets)))
    check_order([(s.name, s.init_from) for s in stages], where)
    return Recipe(
        name=name,
        description=str(data.get("description", "")),
        stages=tuple(stages),
        set=recipe_set,
    )


def linear_without_backbone(at: str, first: bool) -> str:
    """The message for a ``linear`` stage of a recipe that takes no backbone to freeze."""
    why = (
        "it is the first stage, so no earlier stage gives it a backbone"
        if first
        else "its init_from does not take the backbone"
    )
    return (
        f"{at}: protocol 'linear' freezes a pre-trained backbone, but {why} (a linear probe on "
        "random weights); give it init_from: {stage: <earlier stage>, parts: [backbone]}, use "
        "protocol finetune, or set model.checkpoint=PATH for the backbone it freezes"
    )


def _settings(sets: Any, at: str, method_hint: str, own_method: bool = False) -> dict[str, Any]:
    """``set``: knobs in override form (``group: option`` or ``group.key: value``). A stage's own
    ``set`` (``own_method``) may also set knobs of the method it names (``method.<key>``, e.g.
    ``method.ema.enabled: true`` for SSFER's EMA-teacher stage), never the method itself."""
    from fer_core.engine.build import GROUPS

    def bad_key(k: str) -> bool:
        group = k.split(".")[0]
        if group == "method":
            return not (own_method and "." in k)
        return group not in GROUPS

    sets = sets or {}
    bad = [k for k in map(str, sets) if bad_key(k)] if isinstance(sets, dict) else [sets]
    if bad or "trainer.protocol" in sets:
        own = " and method.<key> (its own method's knobs)" if own_method else ""
        raise _error(
            f"{at}: set may hold knobs of {', '.join(g for g in GROUPS if g != 'method')}{own} "
            f"except trainer.protocol (a stage names its method and protocol; method knobs go "
            f"through {method_hint}=...), got {bad or ['trainer.protocol']}"
        )
    return dict(sets)


def _init_from(init: Any, at: str) -> InitFrom:
    from fer_core.methods.base import HANDOFF_PARTS

    if not isinstance(init, dict) or set(init) - {"stage", "parts"} or "stage" not in init:
        raise _error(f"{at}: init_from must look like {{stage: <earlier stage>, parts: [...]}}")
    parts = init.get("parts", ["backbone"])
    if isinstance(parts, str):
        parts = [parts]
    bad = [p for p in parts if p not in HANDOFF_PARTS]
    if not parts or bad:
        raise _error(
            f"{at}: init_from.parts {parts!r} is not allowed; allowed: {', '.join(HANDOFF_PARTS)}"
        )
    return InitFrom(stage=str(init["stage"]), parts=tuple(dict.fromkeys(parts)))


def check_order(stages: list[tuple[str, InitFrom | None]], where: str) -> None:
    """Every ``init_from`` names an earlier stage; cycles and self-references are errors."""
    names = [n for n, _ in stages]
    deps = {n: (i.stage if i else None) for n, i in stages}
    for n, dep in deps.items():
        if dep is not None and dep not in names:
            raise _error(
                f"{where}: stage {n!r}: init_from.stage {dep!r} is not a stage of this recipe; "
                f"allowed: {', '.join(x for x in names[: names.index(n)]) or '(none: first stage)'}"
            )
    for n, dep in deps.items():
        if dep == n:
            raise _error(f"{where}: stage {n!r}: init_from.stage names the stage itself")
    for n in names:  # a cycle: the stages have no valid order at all
        seen, cur = [n], deps[n]
        while cur is not None:
            if cur in seen:
                loop = " -> ".join([*seen[seen.index(cur) :], cur])
                raise _error(f"{where}: the stages form no valid order (init_from cycle {loop})")
            seen.append(cur)
            cur = deps[cur]
    for i, (n, init) in enumerate(stages):
        if init is not None and names.index(init.stage) > i:
            raise _error(
                f"{where}: stage {n!r}: init_from.stage {init.stage!r} is a later stage; stages "
                f"run in list order, so it may name only {', '.join(names[:i]) or '(none)'}"
            )
