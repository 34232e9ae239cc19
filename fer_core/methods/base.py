"""The method interface: the training step of one recipe, built from models and losses.

A *method* is an ``nn.Module`` that owns every trainable part of a stage (backbone, heads,
decoders, teachers) and implements one training step.  The trainer loop (``engine/loop.py``)
owns everything else: data loading, augmentation, the optimiser and schedule, precision,
checkpoints, evaluation, logging and the ``on_epoch_end`` callback.

What a method declares in ``needs`` decides what its batches hold. ``needs`` is read from the
*built* method (it may depend on knobs: override it as a property), never from the class:

==================  =========================================================================
``needs.views=2``   ``batch["views"]``: two independently augmented views, each float [N, C, H, W]
                    (contrastive losses: 000 SCL/MSCL, 003 CLBS).  ``batch["image"]`` is view 0.
                    Each view's policy: the method's ``views`` knob (a list of policy names of
                    ``fer_core/conf/aug/``, e.g. ``[simclr, simclr]``) or ``trainer.aug.policy``.
``needs.labels``    False for label-free pre-training (MAE, MaskFeat): the stage reports
                    ``mim/loss`` instead of accuracy and ``predict`` is not used.
``needs.boxes``     ``batch["box"]``: float [N, 4] face boxes of the *augmented* view 0 (FaceMix);
                    ``batch["boxes"]``: one such tensor per view (boxes follow every view).
``needs.unlabelled`` ``batch["unlabelled"]``: ``views`` (one per ``trainer.semi.unlabelled_views``,
                    default ``[weak, strong]``; also keyed by policy name), ``index`` and, with
                    boxes, ``boxes``: ``trainer.semi.unlabelled_ratio`` unlabelled samples per
                    labelled one, without replacement within an epoch (004's EMA-teacher stage).
==================  =========================================================================

Every batch also holds ``image`` (float [N, C, H, W], normalised), ``label`` (long [N], -1 = none),
``index`` (long [N], the dataset index: per-sample state such as PLL confidence vectors is kept by
it), ``votes`` (float [N, 10], FERPlus order) where the dataset has them and, on SynthFER,
``true_label``.  Batch mixing (Mixup/CutMix/FaceMix) happens inside the
method's step, because the papers' mixed losses need both the mixed and the unmixed parts.

Per-sample state and teachers: return them from ``method_state()`` (tensors only, so checkpoints
load with ``weights_only=True``) and restore them in ``load_method_state``; an EMA teacher is a
sub-module updated in ``after_optimizer_step``.  Intermediate features: ``self.backbone`` exposes
patch tokens, the class token, pooled features and multi-stage maps (``models/backbones.py``).

What a method is told (``MethodInfo``, ``self.info``): image size, channels, number of classes and
dataset name, so a method can build a second network for another input size (002's FaceMAE).

What a method declares (the console, the dashboard and the study validator read these):

- ``selection_metric`` / ``selection_mode``: what picks its best checkpoint (``val/uar``/max for
  classifiers, ``mim/loss``/min for MIM pre-training); ``trainer.select_metric`` may name another
  of its reported metrics.
- ``reported_metrics()``: the exact names it reports: the trainer's ``train/loss``, ``lr``,
  ``train/acc``, ``val/{acc,uar,f1,acc_true}``, their ``test/`` twins, ``<selection>_best``,
  ``best_epoch``, and its own (``own_metrics``: ``train/<log>`` for every ``StepOutput.logs`` key
  without a ``/``, the others as they are, and what ``on_epoch_end`` returns).
- ``diagnostic_metrics``: own metrics a report shows beside rows that look identical
  (``pll/revised`` for PLL).

Hand-off between stages (a recipe's ``init_from: {stage, parts}``): ``handoff_state()`` returns named
parts: ``backbone`` (timm naming), ``head``, ``teacher`` (the sub-modules of those names;
override ``handoff_modules``), and ``samples`` (``method_state()``, per-sample state, where the
method keeps any). ``load_handoff(parts)`` takes the module parts before ``on_train_start``; the
loop restores ``samples`` through ``load_method_state`` after it.

Example (a complete method: two views, an EMA teacher, a declared selection metric)::

    >>> import copy, torch
    >>> import torch.nn.functional as F
    >>> from torch import nn
    >>> from fer_core.methods.base import (Method, MethodNeeds, StepContext, StepOutput,
    ...                                    register_method)
    >>> class TeacherConsistency(Method):
    ...     # CE on view 0 + MSE between the student on view 1 and an EMA teacher on view 0
    ...     own_metrics = ("train/ce", "train/consistency")
    ...     def __init__(self, backbone, num_classes, *, momentum=0.99, weight=1.0, **kw):
    ...         super().__init__(backbone, num_classes, **kw)
    ...         if not 0.0 <= momentum < 1.0:
    ...             raise ValueError(f"method.momentum must be in [0, 1), got {momentum!r}")
    ...         self.head = nn.Linear(backbone.num_features, num_classes)
    ...         self.teacher = nn.Sequential(copy.deepcopy(backbone), copy.deepcopy(self.head))
    ...         self.teacher.requires_grad_(False)
    ...         self.momentum, self.weight, self.teacher_given = momentum, weight, False
    ...     @property
    ...     def needs(self):  # a knob-dependent need: one view when the term is off
    ...         return MethodNeeds(views=2 if self.weight > 0 else 1)
    ...     def forward(self, images):  # [N, C, H, W] -> logits [N, num_classes]
    ...         return self.head(self.backbone.pooled(images))
    ...     def load_handoff(self, parts):  # an earlier stage may hand on its teacher
    ...         super().load_handoff(parts)
    ...         self.teacher_given = "teacher" in parts
    ...     def on_train_start(self, ctx):  # else the teacher starts as a copy of the student
    ...         if not self.teacher_given:
    ...             student = nn.Sequential(self.backbone, self.head).state_dict()
    ...             self.teacher.load_state_dict(student)
    ...     def training_step(self, batch, ctx):
    ...         logits = self(batch["image"])
    ...         ce = F.cross_entropy(logits, batch["label"], ignore_index=-1)
    ...         logs, loss = {"ce": ce.detach()}, ce
    ...         if self.needs.views == 2:
    ...             with torch.no_grad():
    ...                 t = self.teacher[1](self.teacher[0].pooled(batch["views"][0]))
    ...             cons = F.mse_loss(self(batch["views"][1]).softmax(1), t.softmax(1))
    ...             loss = loss + self.weight * cons
    ...             logs["consistency"] = cons.detach()
    ...         return StepOutput(loss=loss, logs=logs, logits=logits.detach())
    ...     @torch.no_grad()
    ...     def after_optimizer_step(self, ctx):  # EMA: t <- m t + (1 - m) s
    ...         student = list(self.backbone.parameters()) + list(self.head.parameters())
    ...         for pt, ps in zip(self.teacher.parameters(), student):
    ...             pt.mul_(self.momentum).add_(ps.detach(), alpha=1 - self.momentum)
    >>> from fer_core.models.backbones import create_backbone
    >>> m = TeacherConsistency(create_backbone("resnet_tiny_cpu", img_size=32, in_chans=1), 7)
    >>> m.needs.views, m.selection_metric, m.selection_mode
    (2, 'val/uar', 'max')
    >>> sorted(m.handoff_parts())  # "head" and "teacher": sub-modules of those names
    ['backbone', 'head', 'teacher']
    >>> "train/consistency" in m.reported_metrics() and "test/uar" in m.reported_metrics()
    True
    >>> m.on_train_start(None)  # the loop passes a TrainContext; this method does not read it
    >>> views = [torch.randn(4, 1, 32, 32), torch.randn(4, 1, 32, 32)]
    >>> batch = {"image": views[0], "views": views, "label": torch.tensor([0, 1, 2, -1])}
    >>> out = m.training_step(batch, None)
    >>> sorted(out.logs), out.logits.shape, bool(out.loss > 0)
    (['ce', 'consistency'], torch.Size([4, 7]), True)
    >>> m2 = TeacherConsistency(create_backbone("resnet_tiny_cpu", img_size=32, in_chans=1), 7)
    >>> m2.load_handoff(m.handoff_state())  # a later stage takes backbone, head and teacher
    >>> all(torch.equal(a, b) for a, b in zip(m2.teacher.parameters(), m.teacher.parameters()))
    True

Register it with ``@register_method("name")`` and give it a config group
``fer_core/conf/method/<name>.yaml`` whose keys are its knobs (plus ``name`` and ``test_model``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from fer_core.registry import Registry

METHODS: Registry[type] = Registry("method")


def register_method(name: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`Method` subclass under ``name``."""

    def deco(cls: type) -> type:
        cls.method_name = name
        METHODS.register(name)(cls)
        return cls

    return deco


def create_method(name: str, backbone: nn.Module, num_classes: int, **kwargs: Any) -> Method:
    """Build a registered method; ``kwargs`` are its knobs (nested config keys joined by ``_``)."""
    return METHODS.create(name, backbone, num_classes, **kwargs)


def list_methods() -> list[str]:
    return METHODS.names()


@dataclass(frozen=True)
class MethodNeeds:
    """What a method needs in its batches (see the module docstring)."""

    views: int = 1
    labels: bool = True
    boxes: bool = False
    unlabelled: bool = False
    # where the face boxes come from (annotated | detector | full, data/boxes.py's face_boxes);
    # None: the dataset's own boxes, or the whole image where it has none
    box_source: str | None = None


@dataclass(frozen=True)
class MethodInfo:
    """What a method is told about its input (``Method.info``)."""

    num_classes: int
    img_size: int | None = None  # square input side in pixels (None: not known, e.g. unit tests)
    channels: int | None = None  # 1 (grey) or 3
    dataset: str = ""  # registered dataset name (``fer_core.data.list_datasets()``)
    batch_size: int | None = None  # trainer.batch_size (e.g. contrastive losses need >= 2)


# Metrics the trainer computes for every labelled method (``val/`` each epoch, ``test/`` once).
CLASSIFICATION_METRICS = ("acc", "uar", "f1", "acc_true")
# The parts a stage can hand to a later one (a recipe's ``init_from.parts``).
HANDOFF_PARTS = ("backbone", "head", "teacher", "samples")


@dataclass
class StepContext:
    """Where the loop is when it calls ``training_step`` (read-only for methods)."""

    epoch: int  # 0-based
    step: int  # step within the epoch
    global_step: int
    steps_per_epoch: int
    num_epochs: int
    device: torch.device
    # seeded RNG for method-side randomness (masks, mixing)
    generator: torch.Generator | None = None

    @property
    def progress(self) -> float:
        """Fraction of training done, in [0, 1] (EMA schedules, GWO-free ramps)."""
        total = max(1, self.steps_per_epoch * self.num_epochs)
        return min(1.0, self.global_step / total)


@dataclass
class StepOutput:
    """What a training step returns: the loss to back-propagate and scalars to log.

    ``logs`` values are logged as ``train/<name>`` (method-specific names may already carry a
    prefix such as ``pll/``, then they are logged as they are).  ``logits`` (detached, [N, C]) lets
    the loop compute training accuracy without a second forward pass.
    """

    loss: torch.Tensor
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)
    logits: torch.Tensor | None = None


@dataclass
class TrainContext:
    """Given once to ``on_train_start``: the training split and a way to run the model over it.

    ``train_set`` is the :class:`fer_core.data.base.FERImageSet` (whole-split ``labels``, ``votes``,
    ``true_labels`` by dataset index).  ``iterate_train(batch_size)`` yields evaluation-transformed
    batches of the training set in index order (dicts as above), e.g. to build top-k candidate sets
    from a warm-up model's predictions.
    """

    train_set: Any
    num_classes: int
    device: torch.device
    iterate_train: Callable[[int], Iterator[dict]]
    run_dir: Any = None


class Method(nn.Module):
    """Base class of every method; see the module docstring for the contract."""

    method_name: ClassVar[str] = ""
    needs: MethodNeeds = MethodNeeds()  # a class attribute, or a property over the knobs
    selection_metric: str = "val/uar"  # label-free methods name their own (e.g. mim/loss)
    selection_mode: str = "max"  # "max" or "min"
    own_metrics: tuple[str, ...] = ()  # the method's own metric names (see reported_metrics)
    diagnostic_metrics: tuple[str, ...] = ()  # own metrics a report shows beside identical rows

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        info: MethodInfo | None = None,
        views: list[str] | tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            raise TypeError(
                f"method {self.method_name!r} got unknown settings {sorted(kwargs)}; "
                "check the keys of its config group (fer_core/conf/method/)"
            )
        if info is not None and info.num_classes != num_classes:
            raise ValueError(
                f"MethodInfo.num_classes={info.num_classes} but num_classes={num_classes}"
            )
        self.backbone = backbone
        self.num_classes = num_classes
        self.info = info if info is not None else MethodInfo(num_classes=num_classes)
        # augmentation policy per view (None: trainer.aug.policy); checked against needs.views
        # by the loop before training (engine/batches.py view_names)
        self.views = None if views is None else tuple(str(v) for v in views)

    # --- the step -------------------------------------------------------------------------
    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        raise NotImplementedError

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Class scores [N, num_classes] for evaluation (default: ``self(images)``)."""
        return self(images)

    # --- hooks (all optional) ---------------------------------------------------------------
    def on_train_start(self, ctx: TrainContext) -> None:
        """Once before the first epoch (and again after a resume, before state is restored)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Before each epoch."""

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """After each epoch; returns method metrics such as ``pll/revised`` (fractions)."""
        return {}

    def after_optimizer_step(self, ctx: StepContext) -> None:
        """After every optimiser step (EMA teachers, momentum encoders)."""

    def log_images(self, batch: dict) -> dict[str, torch.Tensor]:
        """Images to log once per epoch: name -> float [3, H, W] in [0, 1] (e.g. MAE grids)."""
        return {}

    # --- declarations -----------------------------------------------------------------------
    def reported_metrics(self) -> tuple[str, ...]:
        """The exact metric names this method's stage reports (module docstring)."""
        names = ["train/loss", "lr", *self.own_metrics]
        if self.needs.labels:
            names += ["train/acc", f"{self.selection_metric}_best", "best_epoch"]
            names += [f"{p}/{m}" for p in ("val", "test") for m in CLASSIFICATION_METRICS]
        return tuple(dict.fromkeys(names))

    # --- state ------------------------------------------------------------------------------
    def method_state(self) -> dict[str, torch.Tensor]:
        """Non-parameter state that must survive a checkpoint (tensors only)."""
        return {}

    def load_method_state(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"method {self.method_name!r} keeps no state but got {sorted(state)}")

    # --- hand-off to a later stage ------------------------------------------------------------
    def handoff_modules(self) -> dict[str, nn.Module]:
        """The sub-modules handed on besides the backbone: ``head`` and ``teacher`` where the
        method has modules of those names (override to rename or withhold, e.g. MIM decoders)."""
        out: dict[str, nn.Module] = {}
        for part in ("head", "teacher"):
            module = getattr(self, part, None)
            if isinstance(module, nn.Module):
                out[part] = module
        return out

    def handoff_parts(self) -> tuple[str, ...]:
        """The parts this method can hand on (and take): a subset of ``HANDOFF_PARTS``."""
        parts = ["backbone", *self.handoff_modules()]
        if type(self).method_state is not Method.method_state:
            parts.append("samples")
        return tuple(parts)

    def handoff_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """``{part: tensors}``: ``backbone`` in timm naming, module parts as state dicts, and
        ``samples`` (``method_state()``) when it holds anything. Tensors are CPU copies."""

        def cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.detach().cpu().clone() for k, v in sd.items()}

        parts = {"backbone": cpu(self.backbone.timm_state_dict())}
        for name, module in self.handoff_modules().items():
            parts[name] = cpu(module.state_dict())
        samples = self.method_state()
        if samples:
            parts["samples"] = cpu(samples)
        return parts

    def load_handoff(self, parts: dict[str, dict[str, torch.Tensor]]) -> None:
        """Load module parts (``backbone``, ``head``, ``teacher``) from an earlier stage's
        ``handoff_state()``; ``samples`` go through ``load_method_state`` (the loop does it
        after ``on_train_start``). A part this method lacks is a ``ValueError`` naming it."""
        modules = self.handoff_modules()
        for name, sd in parts.items():
            if name == "backbone":
                self.backbone.load_timm_state_dict(sd)
            elif name in modules:
                try:
                    modules[name].load_state_dict(sd)
                except RuntimeError as e:
                    raise ValueError(
                        f"method {self.method_name!r}: the handed-on {name!r} does not fit its "
                        f"{name} ({str(e).splitlines()[0]})"
                    ) from e
            elif name != "samples":
                raise ValueError(
                    f"method {self.method_name!r} has no part {name!r}; it takes "
                    f"{', '.join(self.handoff_parts())}"
                )

    def param_groups(self) -> list[dict] | None:
        """Optional optimiser parameter groups (``None``: the loop builds them, with layer decay)."""
        return None
