"""The method interface: the training step of one recipe, built from models and losses.

A *method* is an ``nn.Module`` that owns every trainable part of a stage (backbone, heads,
decoders, teachers) and implements one training step.  The trainer loop (``engine/loop.py``)
owns everything else: data loading, augmentation, the optimiser and schedule, precision,
checkpoints, evaluation, logging and the ``on_epoch_end`` callback.

What a method declares in ``needs`` decides what its batches hold:

==================  =========================================================================
``needs.views=2``   ``batch["views"]``: two independently augmented views, each float [N, C, H, W]
                    (contrastive losses: 000 SCL/MSCL, 003 CLBS).  ``batch["image"]`` is view 0.
``needs.labels``    False for label-free pre-training (MAE, MaskFeat): the stage reports
                    ``mim/loss`` instead of accuracy and ``predict`` is not used.
``needs.boxes``     ``batch["box"]``: float [N, 4] face boxes of the *augmented* images (FaceMix).
``needs.unlabelled`` ``batch["unlabelled"]``: a dict with ``weak`` and ``strong`` float views of an
                    unlabelled batch beside the labelled one (004's EMA-teacher stage).
``needs.votes``     ``batch["votes"]``: float [N, 10] annotator votes (FERPlus order).
==================  =========================================================================

Every batch also holds ``image`` (float [N, C, H, W], normalised), ``label`` (long [N], -1 = none),
``index`` (long [N], the dataset index: per-sample state such as PLL confidence vectors is kept by
it) and, on SynthFER, ``true_label``.  Batch mixing (Mixup/CutMix/FaceMix) happens inside the
method's step, because the papers' mixed losses need both the mixed and the unmixed parts.

Per-sample state and teachers: return them from ``method_state()`` (tensors only, so checkpoints
load with ``weights_only=True``) and restore them in ``load_method_state``; an EMA teacher is a
sub-module updated in ``after_optimizer_step``.  Intermediate features: ``self.backbone`` exposes
patch tokens, the class token, pooled features and multi-stage maps (``models/backbones.py``).

Example (a complete method)::

    @register_method("ce")
    class CrossEntropy(Method):
        def __init__(self, backbone, num_classes, *, label_smoothing: float = 0.0, **kw):
            super().__init__(backbone, num_classes, **kw)
            self.head = nn.Linear(backbone.num_features, num_classes)
            self.label_smoothing = label_smoothing

        def forward(self, images):                       # logits [N, num_classes]
            return self.head(self.backbone.pooled(images))

        def training_step(self, batch, ctx):
            logits = self(batch["image"])
            loss = F.cross_entropy(logits, batch["label"], label_smoothing=self.label_smoothing)
            return StepOutput(loss=loss, logs={"ce": loss.detach()}, logits=logits.detach())
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
    votes: bool = False


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
    needs: ClassVar[MethodNeeds] = MethodNeeds()

    def __init__(self, backbone: nn.Module, num_classes: int, **kwargs: Any) -> None:
        super().__init__()
        if kwargs:
            raise TypeError(
                f"method {self.method_name!r} got unknown settings {sorted(kwargs)}; "
                "check the keys of its config group (fer_core/conf/method/)"
            )
        self.backbone = backbone
        self.num_classes = num_classes

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

    # --- state ------------------------------------------------------------------------------
    def method_state(self) -> dict[str, torch.Tensor]:
        """Non-parameter state that must survive a checkpoint (tensors only)."""
        return {}

    def load_method_state(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"method {self.method_name!r} keeps no state but got {sorted(state)}")

    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The backbone's weights in timm's naming, for the next stage (pre-train hand-off)."""
        return self.backbone.timm_state_dict()

    def param_groups(self) -> list[dict] | None:
        """Optional optimiser parameter groups (``None``: the loop builds them, with layer decay)."""
        return None
