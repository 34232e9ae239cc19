"""The self-supervised baselines of 002 (Table 1, Table 4): ``byol``, ``simsiam``, ``moco``,
``mocov2`` and ``simclr``.

Each is a label-free pre-training stage on two views of every image (002 Sec. 4.1: "the
augmentation list of SimCLR", the ``simclr`` policy, ``method.views``), reporting and selecting
on its own loss (``<name>/loss``, minimised). Only the backbone goes on to a later stage
(``conf/recipe/ssl_*.yaml``: linear evaluation, semi-supervised, fine-tuning, transfer); the
projectors, predictors, target network and queue are dropped.

Heads (002 Sec. 4.1, "Network Architectures"): every projector and predictor is a fully
connected layer with batch normalisation and a ReLU, followed by another fully connected layer
(``proj.head: mlp``; lightly's ``BYOLProjectionHead`` / ``BYOLPredictionHead`` are exactly that);
``proj.head: linear`` is MoCo v1's single fc. ``proj.hidden_dim`` / ``proj.dim`` size it.

- ``byol`` (Grill et al. 2020; 002 Sec. 3.1 GFL): online backbone + projector + predictor, target
  backbone + projector updated by ``rho <- tau rho + (1 - tau) theta``; loss Eq. 1 summed over both
  view orders. ``gfl.ema`` is tau (0.99 constant, as the authors' code), ``gfl.ema_schedule:
  cosine`` BYOL's ramp from ``gfl.ema`` (BYOL: 0.996) to 1.
- ``simsiam`` (Chen & He 2021): no target; symmetric negative cosine with stop-gradient. Its
  projector follows Sec. 4.1 (two layers) rather than SimSiam's three.
- ``moco`` (He et al. 2020) / ``mocov2`` (Chen et al. 2020): a momentum key encoder (``gfl.ema``,
  0.999 as MoCo) and a queue of ``queue_size`` keys (``losses/ssl.py`` ``KeyQueue``: the write
  wraps, so the queue need not be a multiple of the batch size); InfoNCE with ``temperature``
  (0.07 v1, 0.2 v2). v2's other changes (MLP head, blur, cosine schedule) are here for both: Sec.
  4.1's heads, the ``simclr`` policy and the recipe's schedule; ``proj.head: linear`` gives v1's
  fc. Shuffling BN (MoCo's multi-GPU trick) has no effect on one device and is not done.
- ``simclr`` (Chen et al. 2020): NT-Xent over the 2N views with ``temperature`` (0.1, SimCLR's
  ImageNet setting).

Example::

    >>> import torch
    >>> from fer_core.methods import create_method
    >>> from fer_core.models.backbones import create_backbone
    >>> bb = create_backbone("resnet_tiny_cpu", img_size=32, in_chans=1)
    >>> m = create_method("byol", bb, 7, proj_hidden_dim=64, proj_dim=32, pred_hidden_dim=64)
    >>> m.selection_metric, m.needs.views, m.needs.labels, m.handoff_parts()
    ('byol/loss', 2, False, ('backbone',))
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
from torch import nn

from fer_core.losses.ssl import (
    KeyQueue,
    byol_loss,
    check_ema,
    ema_momentum,
    moco_infonce,
    nt_xent,
    simsiam_loss,
    update_target,
)
from fer_core.methods.base import Method, MethodNeeds, StepContext, StepOutput, register_method

PROJ_HEADS = ("mlp", "linear")
SSL_METHODS = ("byol", "simsiam", "moco", "mocov2", "simclr")


def _positive_int(name: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"method.{name}={v!r} is not allowed; use an integer >= 1")
    return int(v)


def make_head(kind: str, in_dim: int, hidden_dim: int, out_dim: int, what: str) -> nn.Module:
    """FC-BN-ReLU-FC (``mlp``, 002 Sec. 4.1; lightly's BYOL heads) or one FC (``linear``)."""
    from lightly.models.modules.heads import BYOLProjectionHead, ProjectionHead

    if kind not in PROJ_HEADS:
        raise ValueError(
            f"method.{what}.head={kind!r} is not allowed; use one of {', '.join(PROJ_HEADS)}"
        )
    hidden_dim = _positive_int(f"{what}.hidden_dim", hidden_dim)
    out_dim = _positive_int(f"{what}.dim", out_dim)
    if kind == "linear":
        return ProjectionHead([(in_dim, out_dim, None, None)])
    return BYOLProjectionHead(input_dim=in_dim, hidden_dim=hidden_dim, output_dim=out_dim)


class SelfSupervised(Method):
    """Shared parts: two views, the projector, an optional predictor and momentum target."""

    needs = MethodNeeds(views=2, labels=False)
    selection_mode = "min"
    uses_target: ClassVar[bool] = False

    def __init__(self, backbone, num_classes, *, proj_head, proj_hidden_dim, proj_dim,
                 views, gfl_ema=None, gfl_ema_schedule="constant", **kw) -> None:  # fmt: skip
        super().__init__(backbone, num_classes, views=views, **kw)
        name = self.method_name
        self.selection_metric = f"{name}/loss"
        self.own_metrics = (f"{name}/loss",)
        bs = self.info.batch_size
        if bs is not None and bs < 2:
            raise ValueError(
                f"method {name!r} needs trainer.batch_size >= 2 (its projector's BatchNorm and "
                f"its loss compare samples within a batch), got {bs}"
            )
        self.projector = make_head(proj_head, backbone.num_features, proj_hidden_dim, proj_dim,
                                   "proj")  # fmt: skip
        self.proj_dim = int(proj_dim)
        if self.uses_target:
            self.ema, self.ema_schedule = check_ema(gfl_ema, gfl_ema_schedule)
            self.target = nn.ModuleDict(
                {"backbone": copy.deepcopy(backbone), "projector": copy.deepcopy(self.projector)}
            )
            self.target.requires_grad_(False)
        self.momentum = None  # the last tau used (logged)

    def handoff_modules(self) -> dict[str, nn.Module]:
        """Only the backbone goes on (projectors, predictor, target and queue are dropped)."""
        return {}

    def online(self, x: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> projection [N, proj.dim]."""
        return self.projector(self.backbone.pooled(x))

    @torch.no_grad()
    def target_proj(self, x: torch.Tensor) -> torch.Tensor:
        return self.target["projector"](self.target["backbone"].pooled(x))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.online(images)

    def on_train_start(self, ctx) -> None:
        """The target starts as a copy of the online network (a resume then loads its own)."""
        if self.uses_target:
            self.target["backbone"].load_state_dict(self.backbone.state_dict())
            self.target["projector"].load_state_dict(self.projector.state_dict())

    @torch.no_grad()
    def after_optimizer_step(self, ctx: StepContext) -> None:
        if not self.uses_target:
            return
        total = ctx.steps_per_epoch * ctx.num_epochs
        self.momentum = ema_momentum(self.ema, self.ema_schedule, ctx.global_step, total)
        update_target(self.backbone, self.target["backbone"], self.momentum)
        update_target(self.projector, self.target["projector"], self.momentum)

    def loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        v1, v2 = batch["views"]
        loss = self.loss(v1, v2)
        return StepOutput(loss=loss, logs={self.selection_metric: loss.detach()})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            f"method {self.method_name!r} is a label-free pre-training stage and has no class "
            "scores; probe or fine-tune its backbone in a later stage (recipe=ssl_linear)"
        )


@register_method("byol")
class BYOL(SelfSupervised):
    """BYOL / SimFLE's GFL branch (002 Sec. 3.1, Eq. 1); knobs as ``conf/method/byol.yaml``."""

    uses_target = True

    def __init__(self, backbone, num_classes, *, proj_head: str = "mlp",
                 proj_hidden_dim: int = 4096, proj_dim: int = 256, pred_hidden_dim: int = 4096,
                 gfl_ema: float = 0.99, gfl_ema_schedule: str = "constant",
                 views: list[str] | None = ["simclr", "simclr"], **kw) -> None:  # noqa: B006  # fmt: skip
        super().__init__(backbone, num_classes, proj_head=proj_head,
                         proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim, views=views,
                         gfl_ema=gfl_ema, gfl_ema_schedule=gfl_ema_schedule, **kw)  # fmt: skip
        self.predictor = make_head("mlp", proj_dim, pred_hidden_dim, proj_dim, "pred")

    def loss(self, v1, v2):
        p1, p2 = self.predictor(self.online(v1)), self.predictor(self.online(v2))
        z1, z2 = self.target_proj(v1), self.target_proj(v2)
        return byol_loss(p1, z2) + byol_loss(p2, z1)  # Eq. 1 and its swapped twin


@register_method("simsiam")
class SimSiam(SelfSupervised):
    """SimSiam: predictor + stop-gradient, no target; knobs as ``conf/method/simsiam.yaml``."""

    def __init__(self, backbone, num_classes, *, proj_head: str = "mlp",
                 proj_hidden_dim: int = 2048, proj_dim: int = 2048, pred_hidden_dim: int = 512,
                 views: list[str] | None = ["simclr", "simclr"], **kw) -> None:  # noqa: B006  # fmt: skip
        super().__init__(backbone, num_classes, proj_head=proj_head,
                         proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim, views=views,
                         **kw)  # fmt: skip
        self.predictor = make_head("mlp", proj_dim, pred_hidden_dim, proj_dim, "pred")

    def loss(self, v1, v2):
        z1, z2 = self.online(v1), self.online(v2)
        return simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2)


class _MoCo(SelfSupervised):
    uses_target = True

    def __init__(self, backbone, num_classes, *, queue_size: int, temperature: float,
                 **kw) -> None:  # fmt: skip
        super().__init__(backbone, num_classes, **kw)
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not (temperature > 0)
        ):
            raise ValueError(f"method.temperature={temperature!r} is not allowed; use a number > 0")
        self.temperature = float(temperature)
        self.queue = KeyQueue(queue_size, self.proj_dim)

    def loss(self, v1, v2):
        q = self.online(v1)
        k = self.target_proj(v2)
        loss = moco_infonce(q, k, self.queue.keys, self.temperature)
        if self.training:
            self.queue.push(k)  # after the logits: the batch's own keys are not its negatives
        return loss


@register_method("moco")
class MoCo(_MoCo):
    """MoCo (v1): momentum key encoder and a queue; knobs as ``conf/method/moco.yaml``."""

    def __init__(self, backbone, num_classes, *, proj_head: str = "mlp",
                 proj_hidden_dim: int = 2048, proj_dim: int = 128, queue_size: int = 65536,
                 temperature: float = 0.07, gfl_ema: float = 0.999,
                 gfl_ema_schedule: str = "constant",
                 views: list[str] | None = ["simclr", "simclr"], **kw) -> None:  # noqa: B006  # fmt: skip
        super().__init__(backbone, num_classes, proj_head=proj_head,
                         proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim,
                         queue_size=queue_size, temperature=temperature, gfl_ema=gfl_ema,
                         gfl_ema_schedule=gfl_ema_schedule, views=views, **kw)  # fmt: skip


@register_method("mocov2")
class MoCoV2(_MoCo):
    """MoCo v2: MoCo with temperature 0.2; knobs as ``conf/method/mocov2.yaml``."""

    def __init__(self, backbone, num_classes, *, proj_head: str = "mlp",
                 proj_hidden_dim: int = 2048, proj_dim: int = 128, queue_size: int = 65536,
                 temperature: float = 0.2, gfl_ema: float = 0.999,
                 gfl_ema_schedule: str = "constant",
                 views: list[str] | None = ["simclr", "simclr"], **kw) -> None:  # noqa: B006  # fmt: skip
        super().__init__(backbone, num_classes, proj_head=proj_head,
                         proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim,
                         queue_size=queue_size, temperature=temperature, gfl_ema=gfl_ema,
                         gfl_ema_schedule=gfl_ema_schedule, views=views, **kw)  # fmt: skip


@register_method("simclr")
class SimCLR(SelfSupervised):
    """SimCLR: NT-Xent over both views; knobs as ``conf/method/simclr.yaml``."""

    def __init__(self, backbone, num_classes, *, proj_head: str = "mlp",
                 proj_hidden_dim: int = 2048, proj_dim: int = 128, temperature: float = 0.1,
                 views: list[str] | None = ["simclr", "simclr"], **kw) -> None:  # noqa: B006  # fmt: skip
        super().__init__(backbone, num_classes, proj_head=proj_head,
                         proj_hidden_dim=proj_hidden_dim, proj_dim=proj_dim, views=views,
                         **kw)  # fmt: skip
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not (temperature > 0)
        ):
            raise ValueError(f"method.temperature={temperature!r} is not allowed; use a number > 0")
        self.temperature = float(temperature)

    def loss(self, v1, v2):
        return nt_xent(self.online(v1), self.online(v2), self.temperature)
