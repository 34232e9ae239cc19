"""The only place that reads configs: Hydra composition, validation, and config -> objects.

``compose(overrides) -> DictConfig`` composes ``fer_core/conf/train.yaml`` with Hydra's compose API
(inside a context manager; no global ``@hydra.main`` state, so it is safe in reused Ray actors).
Stage overrides ``stages.<stage>.<group>=<option>`` / ``stages.<stage>.<group>.<key>=<value>`` are
split off and each stage is composed as a full config (top-level overrides + its own) under
``cfg.stages.<stage>``, in the order the stages are first named. Bad overrides raise
:class:`ConfigError` naming the key, the bad value and what is allowed.

The ``build_*`` functions turn the (resolved) config into plain typed objects; models, losses and
methods never see the config. Method knobs: nested keys join with ``_`` (INTERFACES.md).
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("data", "model", "method", "optim", "sched", "trainer")
MAIN_STAGE = "main"  # the stage name of a single-stage run
_STAGE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class ConfigError(ValueError):
    """A bad override or config value (names the key, the value and what is allowed)."""


def group_options(group: str) -> list[str]:
    """The options of config group ``group`` (file names in ``conf/<group>/``)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


# --------------------------------------------------------------------------- composition
def _hydra_compose(selections: tuple[str, ...]) -> DictConfig:
    """Hydra compose of train.yaml with config-group ``selections`` only (``model=vit_patch_cpu``).

    Memoised and shared: callers copy before changing it. Composing costs ~0.1-0.5 s (Hydra reads
    and merges every file of the defaults list), and a study check composes hundreds of
    configurations that differ only in values, so values are applied afterwards by
    :func:`_apply_values`, exactly as Hydra applies them after its own composition."""
    return _hydra_compose_cached(tuple(selections))


@functools.lru_cache(maxsize=256)
def _hydra_compose_cached(overrides: tuple[str, ...]) -> DictConfig:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            return hydra_compose(config_name="train", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"{e}".strip()) from e


def _apply_values(cfg: DictConfig, overrides: list[str]) -> None:
    """Apply ``key=value`` overrides to a composed ``cfg`` in place, with Hydra's own override
    grammar and the function Hydra's compose applies them with (after composing the defaults list,
    with the root in struct mode), so the result equals composing them all at once."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides=overrides)
        ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"{e}".strip()) from e


def _split(override: str) -> tuple[str, str]:
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key=value")
    key, value = override.split("=", 1)
    key = key.strip()
    if key.startswith(("+", "~")):
        raise ConfigError(
            f"override {override!r}: adding or deleting keys is not allowed; every knob already "
            "exists in its config group (fer_core/conf/)"
        )
    parts = key.split(".")
    if any(p.startswith("_") and p.endswith("_") for p in parts) or parts[0] == "hydra":
        raise ConfigError(
            f"override {override!r}: _target_-style keys and hydra.* are not settable"
        )
    return key, value


def _check_group_option(where: str, group: str, value: str) -> None:
    options = group_options(group)
    if value not in options:
        close = difflib.get_close_matches(value, options, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"{where}: unknown {group} option {value!r}; allowed: {', '.join(options)}.{hint}"
        )


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, (list, ListConfig)):
        return "list"
    if isinstance(v, (dict, DictConfig)):
        return "mapping"
    return "str" if isinstance(v, str) else "null"


def _check_keys(base: DictConfig, final: DictConfig, keys: list[str], where: str) -> None:
    """Every overridden key exists in ``base`` (did-you-mean) and keeps its kind of value."""
    for key in keys:
        node: Any = base
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, DictConfig) or part not in node:
                siblings = list(node.keys()) if isinstance(node, DictConfig) else []
                prefix = ".".join(parts[:i])
                close = difflib.get_close_matches(part, [str(s) for s in siblings], n=1)
                hint = (
                    f" Did you mean {'.'.join([prefix, close[0]]).lstrip('.')!r}?" if close else ""
                )
                allowed = ", ".join(str(s) for s in siblings) or "(none: not a mapping)"
                raise ConfigError(
                    f"{where}unknown key {key!r}: {prefix or 'the config'} has no {part!r}; "
                    f"allowed: {allowed}.{hint}"
                )
            node = node[part]
        old = OmegaConf.select(base, key)
        new = OmegaConf.select(final, key)
        ko, kn = _kind(old), _kind(new)
        if ko in ("null", "str") or kn == "null" or ko == kn:
            continue
        raise ConfigError(f"{where}key {key!r} takes a {ko} (default {old!r}), got {kn} {new!r}")


def _compose_one(overrides: list[str], where: str = "") -> DictConfig:
    selections: list[str] = []
    keys: list[str] = []
    for ov in overrides:
        key, value = _split(ov)
        if key in GROUPS:
            _check_group_option(f"{where}{key}", key, value.strip())
            selections.append(ov)
        elif key.split(".")[0] in GROUPS:
            keys.append(key)
        else:
            raise ConfigError(
                f"{where}unknown key {key!r}; top-level keys are {', '.join(GROUPS)} and stages.<name>"
            )
    base = _hydra_compose(tuple(selections))  # shared: read here, copied below
    _check_keys(base, base, keys, where)  # existence first: Hydra's own message is vaguer
    final = copy.deepcopy(base)
    if keys:
        _apply_values(final, [ov for ov in overrides if _split(ov)[0] not in GROUPS])
    _check_keys(base, final, keys, where)
    return final


def _dedupe(overrides: list[str]) -> list[str]:
    """Keep the last override of each key (later layers win: see ``compose``)."""
    last: dict[str, str] = {}
    for ov in overrides:
        key = _split(ov)[0]
        last.pop(key, None)
        last[key] = ov
    return list(last.values())


def _preset_overrides(settings: dict[str, Any]) -> list[str]:
    from fer_core.overrides import to_overrides  # the one formatter (also used by trials)

    return to_overrides(settings)


def _recipe_stages(
    recipe: str, top: list[str], stages: dict[str, list[str]]
) -> tuple[list[str], dict[str, list[str]], dict[str, dict | None]]:
    """A preset's stages as override lists, in the preset's order, and their ``init_from``.

    Layers, later winning: the preset's recipe-wide ``set`` < the command line's top-level
    overrides < the stage's method, protocol and ``set`` < ``stages.<stage>.*`` overrides."""
    from fer_core.engine.presets import load_recipe

    preset = load_recipe(recipe)
    names = preset.stage_names()
    for ov in top:
        key = _split(ov)[0]
        if key.split(".")[0] == "method" or key == "trainer.protocol":
            raise ConfigError(
                f"recipe {recipe!r}: {key!r} cannot be set for every stage; each stage names its "
                f"own method and protocol: use stages.<stage>.{key}=... (stages: {', '.join(names)})"
            )
    unknown = [n for n in stages if n not in names]
    if unknown:
        raise ConfigError(
            f"recipe {recipe!r} has no stage {unknown[0]!r}; its stages are {', '.join(names)} "
            "(stages.<stage>.* overrides cannot add or reorder a preset's stages)"
        )
    lists: dict[str, list[str]] = {}
    inits: dict[str, dict | None] = {}
    for st in preset.stages:
        own = [f"method={st.method}", f"trainer.protocol={st.protocol}"]
        own += _preset_overrides(st.set)
        lists[st.name] = _dedupe(
            [*_preset_overrides(preset.set), *top, *own, *stages.get(st.name, [])]
        )
        inits[st.name] = (
            {"stage": st.init_from.stage, "parts": list(st.init_from.parts)}
            if st.init_from
            else None
        )
    return _dedupe([*_preset_overrides(preset.set), *top]), lists, inits


def compose(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose ``train.yaml`` + ``overrides`` (``recipe=``, ``stages.*``); raises :class:`ConfigError`.

    ``recipe=<preset>`` (``conf/recipe/``) gives the stages and their order; without one, stages
    named by ``stages.<stage>.*`` overrides run in the order first named, each taking the
    previous stage's backbone."""
    top: list[str] = []
    stages: dict[str, list[str]] = {}
    recipe: str | None = None
    for ov in overrides:
        key, value = _split(ov)
        if key == "recipe":
            recipe = value.strip() or None
            if recipe in ("null", "none"):
                recipe = None
        elif key == "stages" or key.startswith("stages."):
            parts = key.split(".", 2)
            if len(parts) < 3:
                raise ConfigError(
                    f"override {ov!r}: use stages.<stage>.<group>=<option> or "
                    f"stages.<stage>.<group>.<key>=<value> (groups: {', '.join(GROUPS)})"
                )
            name = parts[1]
            if not _STAGE_NAME.match(name):
                raise ConfigError(f"stage name {name!r} must match {_STAGE_NAME.pattern}")
            stages.setdefault(name, []).append(f"{parts[2]}={value}")
        else:
            top.append(ov)
    inits: dict[str, dict | None] = {}
    if recipe is not None:
        top, lists, inits = _recipe_stages(recipe, top, stages)
    else:
        lists = {name: top + own for name, own in stages.items()}
        names = list(lists)
        inits = {
            n: ({"stage": names[i - 1], "parts": ["backbone"]} if i else None)
            for i, n in enumerate(names)
        }
    cfg = _compose_one(top)
    OmegaConf.set_struct(cfg, False)
    cfg.recipe = recipe
    if lists:
        resolved = {}
        for name, own in lists.items():
            sub = _compose_one(own, where=f"stage {name!r}: ")
            sub_c = OmegaConf.to_container(sub, resolve=True)
            sub_c.pop("stages", None)
            sub_c.pop("recipe", None)
            sub_c["init_from"] = inits[name]
            resolved[name] = sub_c
        cfg.stages = resolved
    OmegaConf.set_struct(cfg, True)
    return cfg


# --------------------------------------------------------------------------- config -> objects
def _container(node: Any) -> dict:
    return (
        OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    )


def stage_configs(cfg: DictConfig) -> list[tuple[str, dict]]:
    """``[(stage name, plain dict of its groups + init_from)]``; one ``main`` stage without
    ``stages``. ``init_from`` is ``None`` or ``{"stage": earlier stage, "parts": [...]}``."""
    stages = cfg.get("stages") or {}
    if stages:
        return [(str(k), _container(v)) for k, v in stages.items()]
    c = _container(cfg)
    c.pop("stages", None)
    c.pop("recipe", None)
    c["init_from"] = None
    return [(MAIN_STAGE, c)]


def data_spec(data: dict) -> tuple[str, dict]:
    """``(dataset name, build_splits kwargs)`` with ``root`` made absolute (Ray changes the cwd)."""
    kw = dict(data)
    name = kw.pop("name")
    if kw.get("root") is not None:
        kw["root"] = str(Path(str(kw["root"])).expanduser().resolve())
    return name, kw


def build_data(data: dict):
    from fer_core.data import build_splits

    name, kw = data_spec(data)
    if name not in ("synthfer", "faces") and kw.get("root") is None:  # faces: a SynthFER draw
        raise ConfigError(
            f"data.root is required for dataset {name!r} (data={name} data.root=PATH)"
        )
    return build_splits(name, **kw)


def flatten_knobs(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"revision": {"threshold": 0.3}}`` -> ``{"revision_threshold": 0.3}`` (INTERFACES.md)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}_{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten_knobs(v, name))
        else:
            out[name] = v
    return out


def method_spec(method: dict) -> tuple[str, dict[str, Any]]:
    kw = dict(method)
    name = kw.pop("name")
    kw.pop("test_model", None)  # the model tests run it on, not a knob
    return name, flatten_knobs(kw)


def build_backbone(model: dict, img_size: int, in_chans: int, checkpoint: str | None = None):
    from fer_core.models.backbones import create_backbone

    kw = dict(model)
    name = kw.pop("name")
    size = kw.pop("img_size", None) or img_size
    ckpt = checkpoint or kw.pop("checkpoint", None)
    kw.pop("checkpoint", None)
    if kw.get("stage_indices") is None:
        kw.pop("stage_indices", None)
    if ckpt:
        ckpt = str(Path(str(ckpt)).expanduser().resolve())
    return create_backbone(name, img_size=int(size), in_chans=int(in_chans), checkpoint=ckpt, **kw)


def build_method(stage: dict, info, checkpoint=None):
    """The stage's method on its backbone; ``info`` is a :class:`fer_core.methods.MethodInfo`
    (``img_size`` and ``channels`` size the backbone)."""
    from fer_core.methods import create_method

    backbone = build_backbone(stage["model"], int(info.img_size), int(info.channels), checkpoint)
    name, kw = method_spec(stage["method"])
    return create_method(name, backbone, info.num_classes, info=info, **kw)


def build_optimizer(optim: dict, sched: dict, method) -> Any:
    """timm ``create_optimizer_v2`` over the method's parameter groups (ViT layer decay via timm)."""
    from timm.optim import create_optimizer_v2, param_groups_layer_decay, param_groups_weight_decay

    kw = dict(optim)
    name = kw.pop("name")
    wd = float(kw.pop("weight_decay", 0.0))
    layer_decay = kw.pop("layer_decay", None)
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    groups = method.param_groups()
    if groups is None:
        trainable = {n for n, p in method.named_parameters() if p.requires_grad}
        bb = method.backbone
        groups = []
        if layer_decay is not None and getattr(bb, "kind", "") == "vit":
            bb_groups = param_groups_layer_decay(
                bb.model, weight_decay=wd, layer_decay=float(layer_decay),
                no_weight_decay_list=list(bb.model.no_weight_decay()),
            )  # fmt: skip
        else:
            bb_groups = param_groups_weight_decay(bb.model, weight_decay=wd)
        for g in bb_groups:
            ps = [p for p in g["params"] if p.requires_grad]
            if ps:
                groups.append({**g, "params": ps})
        bb_ids = {id(p) for p in bb.parameters()}
        rest = [
            (n, p) for n, p in method.named_parameters() if id(p) not in bb_ids and n in trainable
        ]
        decay = [p for n, p in rest if p.ndim > 1 and not n.endswith(".bias")]
        no_decay = [p for n, p in rest if not (p.ndim > 1 and not n.endswith(".bias"))]
        if decay:
            groups.append({"params": decay, "weight_decay": wd})
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
    if not groups:
        raise ConfigError("nothing to train: every parameter is frozen")
    return create_optimizer_v2(groups, opt=name, lr=float(sched["lr"]), weight_decay=wd, **kw)


def build_scheduler(sched: dict, optimizer, epochs: int, steps_per_epoch: int):
    """The ``sched`` group as a timm scheduler (``engine/schedule.py``), stepped every update."""
    from fer_core.engine.schedule import make_scheduler

    kw = dict(sched)
    name = kw.pop("name")
    kw.pop("lr", None)  # the optimiser's base lr (build_optimizer)
    try:
        return make_scheduler(name, optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch, **kw)
    except ValueError as e:
        raise ConfigError(str(e)) from e


@dataclass(frozen=True)
class TrainerSettings:
    """The ``trainer`` group as typed attributes. No defaults here: they live once, in
    ``conf/trainer/default.yaml`` (every field is required, so the two cannot drift)."""

    epochs: int
    batch_size: int
    eval_batch_size: int
    seed: int
    device: str
    precision: str
    channels_last: Any
    compile: bool
    compile_backend: str
    grad_clip: float | None
    ema: float | None
    eval_every: int
    num_workers: int
    deterministic: bool
    threads: int | None
    progress: bool
    resume: str | None
    run_dir: str | None
    select_metric: str | None
    save_every: int
    aug: dict
    protocol: str
    semi: dict
    init: str | None
    kfold: dict
    eval: dict


PROTOCOLS = ("finetune", "linear", "semi", "transfer", "kfold")
AUG_DEVICES = ("cpu", "auto")  # trainer.aug.device


def trainer_settings(trainer: dict) -> TrainerSettings:
    s = TrainerSettings(**trainer)
    if s.protocol not in PROTOCOLS:
        raise ConfigError(
            f"trainer.protocol must be one of {', '.join(PROTOCOLS)}, got {s.protocol!r}"
        )
    if int(s.epochs) < 1 or int(s.batch_size) < 1:
        raise ConfigError(
            f"trainer.epochs and trainer.batch_size must be >= 1, got {s.epochs}, {s.batch_size}"
        )
    if s.precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"trainer.precision must be auto, fp32 or bf16, got {s.precision!r}")
    if not isinstance(s.compile, bool):
        raise ConfigError(f"trainer.compile must be true or false, got {s.compile!r}")
    if not isinstance(s.compile_backend, str) or not s.compile_backend:
        raise ConfigError(
            f"trainer.compile_backend must be a torch.compile backend name (inductor, eager, "
            f"aot_eager, ...), got {s.compile_backend!r}"
        )
    if (s.aug or {}).get("device") not in AUG_DEVICES:
        raise ConfigError(
            f"trainer.aug.device must be one of {', '.join(AUG_DEVICES)}, got "
            f"{(s.aug or {}).get('device')!r}"
        )
    from fer_core.engine.metrics import check_unseen_threshold

    try:
        check_unseen_threshold((s.eval or {}).get("unseen_threshold"))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if s.protocol == "transfer" and not s.init:
        raise ConfigError("trainer.protocol=transfer needs trainer.init=<checkpoint file or dir>")
    return s
