"""MIMIC's contrastive fine-tuning stage (000, Sec. III-B, Eq. 14, Algorithm 1 lines 7-14): ``mimic``.

Loss (Eq. 14): ``CE + lambda_ * L_con`` with ``contrastive`` one of

- ``none``: cross-entropy only (Table II's CE rows); one view;
- ``scl``: supervised contrastive loss, Eq. 6 (``losses/supcon.py``), over two views;
- ``mscl``: mix-supervised contrastive loss, Eq. 11-13 (``losses/mscl.py``): the two views plus
  their Mixup/CutMix mixes (``methods/mixing.py``, ``mix.kind``, ``lam ~ Beta(mix.alpha,
  mix.beta)``, drawn from the trial's generator); a mixed sample is a positive of an anchor when its
  mixed label lies within ``mix.threshold`` of the anchor's label under ``mix.distance``.

Features: the backbone's pooled feature ``r`` (``model.pool``: ``gap`` or the class ``token``,
Table IV) feeds the linear classifier; the projection head (``proj.head``: ``none | linear |
dense``, ``proj.dim``; Table III; ``models/heads.py``) maps it to ``z``, L2-normalised, for the
contrastive term (Algorithm 1: "r_f is used to update the classification head while z_f is
utilized to aggregate positive samples"). ``tau`` is the temperature; ``base_tau`` SupCon's base
temperature (the loss is scaled by ``tau / base_tau``; the reference implementation's 0.07).

Where the paper leaves a choice open (said here so that a reader can change it):

- CE is computed on view 0 (``batch["image"]``) in every row, so that the CE, SCL and MSCL rows
  differ only by the contrastive term; Algorithm 1 line 12 could also be read as CE on the mixed
  batch.
- Only labelled samples (label >= 0) enter the contrastive term and the mixing.
- One forward pass over ``[view 0, view 1, mixes]``: per step MSCL costs about 4x the forward
  work of CE (N + N + 2N images), SCL 2x.

Layer-wise learning-rate decay (0.65 in Sec. IV-B) is the optimiser's ``optim.layer_decay``; the
pre-training stage and its hand-off are the ``mae_finetune`` recipe
(``recipe=mae_finetune stages.finetune.method=mimic``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.losses.mscl import check_distance, check_threshold, mscl_loss, mscl_positive_mask
from fer_core.losses.supcon import supcon_loss
from fer_core.methods.base import Method, MethodNeeds, StepContext, StepOutput, register_method
from fer_core.methods.mixing import check_mix_settings, mix_batch
from fer_core.models.heads import PROJECTION_KINDS, ClassifierHead, ProjectionHead

CONTRASTIVE = ("none", "scl", "mscl")


@register_method("mimic")
class MIMIC(Method):
    """CE + lambda_ * (SCL | MSCL) fine-tuning; knobs as in ``conf/method/mimic.yaml``."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        contrastive: str = "mscl",
        lambda_: float = 0.1,
        tau: float = 0.07,
        base_tau: float = 0.07,
        proj_head: str = "dense",
        proj_dim: int = 128,
        mix_kind: str = "both",
        mix_alpha: float = 2.0,
        mix_beta: float = 2.0,
        mix_threshold: float = 0.5,
        mix_distance: str = "linf",
        views: list[str] | tuple[str, ...] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(backbone, num_classes, views=views, **kwargs)
        if contrastive not in CONTRASTIVE:
            raise ValueError(
                f"contrastive must be one of {', '.join(CONTRASTIVE)}, got {contrastive!r}"
            )
        if isinstance(lambda_, bool) or not isinstance(lambda_, (int, float)) or lambda_ < 0:
            raise ValueError(f"lambda_ (Eq. 14's weight) must be a number >= 0, got {lambda_!r}")
        for name, v in (("tau", tau), ("base_tau", base_tau)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a number > 0 (a temperature), got {v!r}")
        if proj_head not in PROJECTION_KINDS:
            raise ValueError(
                f"proj.head must be one of {', '.join(PROJECTION_KINDS)}, got {proj_head!r}"
            )
        if isinstance(proj_dim, bool) or not isinstance(proj_dim, int) or proj_dim < 1:
            raise ValueError(f"proj.dim must be an integer >= 1, got {proj_dim!r}")
        check_mix_settings(mix_kind, mix_alpha, mix_beta)
        check_threshold(mix_threshold)
        check_distance(mix_distance)
        self.contrastive = contrastive
        self.lambda_ = float(lambda_)
        self.tau, self.base_tau = float(tau), float(base_tau)
        self.mix_kind, self.mix_alpha, self.mix_beta = mix_kind, float(mix_alpha), float(mix_beta)
        self.mix_threshold, self.mix_distance = float(mix_threshold), mix_distance
        width = backbone.num_features
        self.head = ClassifierHead(width, num_classes)
        self.proj = ProjectionHead(width, kind=proj_head, dim=proj_dim)
        bs = self.info.batch_size
        if contrastive != "none" and bs is not None and bs < 2:  # before any training
            raise ValueError(
                f"contrastive={contrastive} needs trainer.batch_size >= 2 (a batch of {bs} has no "
                "negatives), or contrastive=none"
            )

    @property
    def needs(self) -> MethodNeeds:  # type: ignore[override]
        return MethodNeeds(views=1 if self.contrastive == "none" else 2)

    @property
    def own_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        """``train/ce``; with a contrastive term ``train/con`` (its value) and ``train/pos_frac``
        (the fraction of an anchor's candidates that are positives, averaged over anchors)."""
        if self.contrastive == "none":
            return ("train/ce",)
        return ("train/ce", "train/con", "train/pos_frac")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> logits [N, num_classes]."""
        return self.head(self.backbone.pooled(images))

    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        x0, y = batch["image"], batch["label"]
        n = x0.shape[0]
        if self.contrastive == "none":
            logits = self(x0)
            ce = F.cross_entropy(logits.float(), y, ignore_index=-1)
            return StepOutput(loss=ce, logs={"ce": ce.detach()}, logits=logits.detach())
        if n < 2:
            raise ValueError(
                f"contrastive={self.contrastive} needs at least 2 samples per batch (a batch of "
                f"{n} has no negatives): set trainer.batch_size >= 2 (and a training set of at "
                "least 2 images), or contrastive=none"
            )
        v0, v1 = batch["views"][0], batch["views"][1]
        keep = y >= 0
        yl = y[keep]
        parts = [v0, v1]
        mix = None
        if self.contrastive == "mscl" and yl.numel() > 0:
            g = ctx.generator if ctx is not None else None
            mix = mix_batch(
                torch.cat([v0[keep], v1[keep]]),
                g,
                kind=self.mix_kind,
                alpha=self.mix_alpha,
                beta=self.mix_beta,
            )
            parts.append(mix.images)
        r = self.backbone.pooled(torch.cat(parts))  # one forward pass: [2N (+ 2M), D]
        logits = self.head(r[:n])
        ce = F.cross_entropy(logits.float(), y, ignore_index=-1)
        logs: dict[str, torch.Tensor | float] = {"ce": ce.detach()}
        m = int(yl.numel())
        if m == 0:  # no labelled sample in this batch: nothing to contrast
            con = r.sum() * 0.0
            logs["con"], logs["pos_frac"] = 0.0, 0.0
            return StepOutput(loss=ce + con, logs=logs, logits=logits.detach())
        z = self.proj(r).float()
        anchors = torch.cat([z[:n][keep], z[n : 2 * n][keep]])  # [2M, d], view-major
        labels2 = torch.cat([yl, yl])
        if mix is None:
            con = supcon_loss(
                torch.stack([z[:n][keep], z[n : 2 * n][keep]], dim=1),
                yl,
                temperature=self.tau,
                base_temperature=self.base_tau,
            )
            same = (labels2[:, None] == labels2[None, :]).float()
            pos_frac = (same.sum(1) - 1) / max(1, 2 * m - 1)
        else:
            targets = mix.targets(labels2, self.num_classes)
            con = mscl_loss(
                anchors,
                labels2,
                z[2 * n :],
                targets,
                threshold=self.mix_threshold,
                distance=self.mix_distance,
                temperature=self.tau,
                base_temperature=self.base_tau,
            )
            all_t = torch.cat([F.one_hot(labels2, self.num_classes).float(), targets])
            pos = mscl_positive_mask(labels2, all_t, self.mix_threshold, self.mix_distance)
            pos_frac = (pos.sum(1) - 1) / max(1, all_t.shape[0] - 1)
        logs["con"] = con.detach()
        logs["pos_frac"] = pos_frac.mean().detach()
        return StepOutput(loss=ce + self.lambda_ * con, logs=logs, logits=logits.detach())
