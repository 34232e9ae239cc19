"""Each default lives in one place: config groups agree with the code they configure.

One parametrized test over every registered method, every registered backbone and the trainer:
- ``method/<name>.yaml``: its keys (nested keys joined with ``_``) are the constructor's keyword
  arguments, with the same default values; a keyword argument the YAML leaves out is a failure
  unless ``NOT_IN_GROUP`` says why.
- ``model/<name>.yaml``: ``create_backbone(name, img_size=, in_chans=)`` without settings builds
  the model that the group builds (``engine.build.build_backbone``): the keyword arguments both
  hand to the timm constructor are equal, and each is a real argument of that constructor.
- ``trainer/default.yaml``: its keys are exactly ``TrainerSettings``' fields, none with a default.
A failure names the group, the key and both values.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from omegaconf import OmegaConf

from fer_core.engine import build
from fer_core.methods import METHODS, list_methods
from fer_core.models import backbones

# keys of a method group that are not constructor arguments
METHOD_NOT_KNOBS = ("name", "test_model")
# (method, keyword argument) -> why its group does not name it; empty: every knob is in its YAML
NOT_IN_GROUP: dict[tuple[str, str], str] = {}


def _group(group: str, option: str) -> dict[str, Any] | None:
    path = build.CONF_DIR / group / f"{option}.yaml"
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def _differ(a: Any, b: Any) -> bool:
    return a != b or isinstance(a, bool) != isinstance(b, bool)  # True == 1, but not as a default


def _method_disagreements(name: str) -> list[str]:
    where = f"method/{name}.yaml"
    cfg = _group("method", name)
    if cfg is None:
        return [f"{where}: no such config group for registered method {name!r}"]
    if name not in list_methods():
        return [f"{where}: {name!r} is not a registered method ({', '.join(list_methods())})"]
    if cfg.get("name") != name:
        return [f"{where}: name is {cfg.get('name')!r}, expected {name!r}"]
    cls = METHODS.get(name)
    knobs = build.flatten_knobs({k: v for k, v in cfg.items() if k not in METHOD_NOT_KNOBS})
    params = {
        k: p
        for k, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    out = []
    for key, value in knobs.items():
        if key not in params:
            out.append(
                f"{where}: key {key!r} = {value!r} is not a keyword argument of {cls.__name__}"
            )
        elif params[key].default is not inspect.Parameter.empty and _differ(
            value, params[key].default
        ):
            out.append(
                f"{where}: key {key!r}: YAML {value!r}, {cls.__name__} default "
                f"{params[key].default!r}"
            )
    for key, p in params.items():
        if key not in knobs and (name, key) not in NOT_IN_GROUP:
            default = "no default" if p.default is inspect.Parameter.empty else repr(p.default)
            out.append(
                f"{where}: key {key!r} missing; {cls.__name__} takes it ({default}); add it to the "
                "YAML or say why in tests/test_defaults.py NOT_IN_GROUP"
            )
    return out


class _Built(Exception):
    """Raised by the stand-in timm constructor: carries the keyword arguments it was given."""

    def __init__(self, cls: type, kwargs: dict[str, Any]) -> None:
        super().__init__(cls.__name__)
        self.cls, self.kwargs = cls, kwargs


def _timm_kwargs(make, monkeypatch) -> tuple[type, dict[str, Any]]:
    """The timm class and keyword arguments ``make()`` would construct (nothing is built)."""
    with monkeypatch.context() as m:
        for cls in (backbones.VisionTransformer, backbones.ResNet):

            def stand_in(*args, _cls=cls, **kwargs):
                assert not args, f"{_cls.__name__} called with positional arguments {args}"
                raise _Built(_cls, kwargs)

            m.setattr(backbones, cls.__name__, stand_in)
        with pytest.raises(_Built) as built:
            make()
    return built.value.cls, built.value.kwargs


def _model_disagreements(name: str, monkeypatch) -> list[str]:
    where = f"model/{name}.yaml"
    cfg = _group("model", name)
    if cfg is None:
        return [f"{where}: no such config group for registered backbone {name!r}"]
    if name not in backbones.list_backbones():
        return [f"{where}: {name!r} is not a registered backbone"]
    if cfg.get("name") != name:
        return [f"{where}: name is {cfg.get('name')!r}, expected {name!r}"]
    out = [
        f"{where}: key {k!r}: YAML {cfg.get(k)!r}, create_backbone default None"
        for k in ("checkpoint", "stage_indices")
        if cfg.get(k) is not None
    ]
    size, chans = 32, 1
    cls, from_yaml = _timm_kwargs(lambda: build.build_backbone(cfg, size, chans), monkeypatch)
    _, default = _timm_kwargs(
        lambda: backbones.create_backbone(name, img_size=size, in_chans=chans), monkeypatch
    )
    accepted = inspect.signature(cls.__init__).parameters
    out += [
        f"{where}: {k!r} reaches {cls.__name__}, which takes no such argument"
        for k in from_yaml
        if k not in accepted
    ]

    def value(kwargs: dict[str, Any], k: str) -> tuple[Any, str]:  # unset: timm's own default
        if k in kwargs:
            return kwargs[k], ""
        return accepted[k].default, f" ({cls.__name__}'s default)"

    for k in sorted((set(from_yaml) | set(default)) & set(accepted)):
        (a, a_note), (b, b_note) = value(from_yaml, k), value(default, k)
        if _differ(a, b):
            out.append(
                f"{where}: key {k!r}: YAML {a!r}{a_note}, "
                f"create_backbone({name!r}) default {b!r}{b_note}"
            )
    return out


def _trainer_disagreements(option: str) -> list[str]:
    where = f"trainer/{option}.yaml"
    cfg = _group("trainer", option)
    keys = set(cfg)
    fields = {f.name: f for f in dataclasses.fields(build.TrainerSettings)}
    out = [f"{where}: key {k!r} is not a TrainerSettings field" for k in sorted(keys - set(fields))]
    out += [
        f"{where}: TrainerSettings field {k!r} is not a key" for k in sorted(set(fields) - keys)
    ]
    for k, f in fields.items():
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            d = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out.append(
                f"{where}: key {k!r}: YAML {cfg.get(k, '(unset)')!r}, "
                f"TrainerSettings default {d!r} (defaults live in the YAML only)"
            )
    return out


CASES = (
    [("method", n) for n in sorted(set(list_methods()) | set(build.group_options("method")))]
    + [("model", n) for n in sorted(set(backbones.list_backbones()) | set(build.group_options("model")))]
    + [("trainer", n) for n in build.group_options("trainer")]
)  # fmt: skip


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}/{o}" for g, o in CASES])
def test_config_group_and_code_agree(group: str, option: str, monkeypatch):
    if group == "method":
        bad = _method_disagreements(option)
    elif group == "model":
        bad = _model_disagreements(option, monkeypatch)
    else:
        bad = _trainer_disagreements(option)
    assert not bad, "defaults disagree:\n" + "\n".join(bad)
