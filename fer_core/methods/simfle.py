"""SimFLE: global (GFL) + fine-grained (FFL) facial feature learning (002 Sec. 3, Fig. 2, Eq. 6).

A label-free pre-training stage (use it through ``recipe=simfle_linear`` and its siblings):

- **GFL** (Sec. 3.1): one of the self-supervised baselines of ``methods/ssl.py`` on two SimCLR
  views (``gfl.method``: byol, the paper's, or simsiam / moco / mocov2 / simclr, Table 4), its
  loss ``L_s``. The GFL knobs ``proj.*``, ``pred.hidden_dim``, ``gfl.ema``, ``gfl.ema_schedule``,
  ``queue_size`` and ``temperature`` go to that method; null keeps its own default
  (``conf/method/<gfl.method>.yaml``).
- **FFL** (Sec. 3.2, ``ffl.enabled``; off = Table 3 (a), GFL only): FaceMAE
  (``models/facemae.py``) on the third view (``views[2]``, ``none`` by default: the authors'
  un-augmented "origin" image) resized to ``ffl.img_size`` (112 in the paper; null = the data's
  size from ``MethodInfo``). The backbone's last feature map of that image (``ffl.feature_stage``:
  -1; an earlier stage where the last is 1x1, as on 32-px SynthFER) is grouped by a 1x1
  convolution into ``ffl.groups`` groups (grouping loss ``L_g``, Eq. 2, ``grouping_form``); one
  group per sample is summed into a score map, upsampled, averaged per ``ffl.patch`` patch
  (Eq. 3) and the patches masked (``ffl.mask_ratio``) in ``ffl.mask_order`` of their scores
  (``ffl.masking=semantic``) or at random (``random``, Table 3 (c)). FaceMAE reconstructs the
  image (``L_r``, Eq. 4: MAE's masked MSE, ``norm_pix_loss``).
- **Connection** (Sec. 3.3): ``distil`` (Table 3 (d)) as the authors' code: the feature map for
  the masking is computed without gradient, and three distillation projectors' outputs (FaceMAE's
  mean visible token ``m``; the backbone's pooled features of both GFL views ``v1``, ``v2``) are
  pulled towards their detached mean (``L_d``, Eq. 5, ``alpha``, ``distil.*``). ``direct``
  (Table 3 (b)): no distillation; the feature map keeps its gradient, so FFL's grouping loss
  reaches the backbone directly (the masking's argsort passes no gradient, so ``L_r`` trains
  FaceMAE only; the paper does not say more about this variant).

Total (Eq. 6): ``L_s + L_r + alpha L_d + beta L_g``. Logged: ``simfle/loss`` (the selection
metric), ``simfle/gfl``, and with FFL ``simfle/rec``, ``simfle/group`` and with ``distil``
``simfle/distil``. Only the backbone is handed on. ``log_images`` shows, for a fixed batch, the
FFL input, its semantic mask (masked patches dark), the score map and the reconstruction.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.losses.mim import mae_loss, patchify, unpatchify
from fer_core.losses.simfle import (
    GROUPING_FORMS,
    MASK_ORDERS,
    distillation_loss,
    grouping_loss,
    patch_scores,
    semantic_masking,
)
from fer_core.methods.base import (
    METHODS,
    Method,
    MethodNeeds,
    StepContext,
    StepOutput,
    register_method,
)
from fer_core.methods.ssl import SSL_METHODS, make_head
from fer_core.models.facemae import FaceMAE
from fer_core.models.mim import random_masking

MASKINGS = ("semantic", "random")
CONNECTIONS = ("distil", "direct")
GRID_ROWS = 4  # images shown in the logged grid


def _display(x: torch.Tensor) -> torch.Tensor:
    """Per-image min-max scaling to [0, 1] and 3 channels: [N, C, H, W] -> [N, 3, H, W]."""
    lo = x.flatten(1).min(dim=1).values.view(-1, 1, 1, 1)
    hi = x.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
    x = (x - lo) / (hi - lo).clamp_min(1e-8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"method.{name}={value!r} is not allowed; use one of {', '.join(allowed)}")
    return str(value)


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"method.{name}={value!r} is not allowed; use a number >= 0 (002: {name}"
                         f" {'0.3' if name == 'alpha' else '0.03'})")  # fmt: skip
    return float(value)


def _recording(cls: type) -> type:
    """``cls`` (a GFL method) whose ``online`` keeps the pooled backbone features it computed, by
    input, so SimFLE's distillation reuses them instead of a second backbone pass."""

    def online(self, x: torch.Tensor) -> torch.Tensor:
        y = self.backbone.pooled(x)
        self.pooled_seen[id(x)] = y
        return self.projector(y)

    return type(f"SimFLE{cls.__name__}", (cls,), {"online": online, "pooled_seen": {}})


@register_method("simfle")
class SimFLE(Method):
    """SimFLE pre-training; knobs as ``conf/method/simfle.yaml`` (defaults mirror it, 002)."""

    selection_metric = "simfle/loss"
    selection_mode = "min"

    def __init__(self, backbone, num_classes, *, gfl_method: str = "byol",
                 gfl_ema: float | None = None, gfl_ema_schedule: str | None = None,
                 proj_head: str | None = None, proj_hidden_dim: int | None = None,
                 proj_dim: int | None = None, pred_hidden_dim: int | None = None,
                 queue_size: int | None = None, temperature: float | None = None,
                 ffl_enabled: bool = True, ffl_groups: int = 32, ffl_mask_ratio: float = 0.75,
                 ffl_masking: str = "semantic", ffl_mask_order: str = "ascending",
                 ffl_patch: int = 16, ffl_img_size: int | None = 112,
                 ffl_encoder: str = "vit_base", ffl_grouping_init: str = "random",
                 ffl_feature_stage: int = -1,
                 decoder_depth: int = 8, decoder_dim: int = 512,
                 decoder_heads: int = 16, norm_pix_loss: bool = True,
                 connection: str = "distil", alpha: float = 0.3, beta: float = 0.03,
                 grouping_form: str = "code", distil_hidden_dim: int = 4096,
                 distil_dim: int = 256, distil_temperature: float = 4.0,
                 distil_detach_mean: bool = True,
                 views: list[str] | None = ["simclr", "simclr", "none"],  # noqa: B006
                 **kw) -> None:  # fmt: skip
        super().__init__(backbone, num_classes, views=views, **kw)
        if self.views is None or len(self.views) != 3:
            raise ValueError(
                f"method.views={views!r} is not allowed; give three policies: the two GFL views "
                "and FFL's input (002: [simclr, simclr, none])"
            )
        self.gfl = self._build_gfl(
            gfl_method,
            {"gfl_ema": gfl_ema, "gfl_ema_schedule": gfl_ema_schedule, "proj_head": proj_head,
             "proj_hidden_dim": proj_hidden_dim, "proj_dim": proj_dim,
             "pred_hidden_dim": pred_hidden_dim, "queue_size": queue_size,
             "temperature": temperature},
        )  # fmt: skip
        if not isinstance(ffl_enabled, bool):
            raise ValueError(f"method.ffl.enabled must be true or false, got {ffl_enabled!r}")
        self.ffl_enabled = ffl_enabled
        self.connection = _choice("connection", connection, CONNECTIONS)
        self.alpha = _non_negative("alpha", alpha)
        self.beta = _non_negative("beta", beta)
        self.grouping_form = _choice("grouping_form", grouping_form, GROUPING_FORMS)
        self.masking = _choice("ffl.masking", ffl_masking, MASKINGS)
        self.mask_order = _choice("ffl.mask_order", ffl_mask_order, MASK_ORDERS)
        if (
            isinstance(ffl_mask_ratio, bool)
            or not isinstance(ffl_mask_ratio, (int, float))
            or not 0.0 < ffl_mask_ratio < 1.0
        ):
            raise ValueError(
                f"method.ffl.mask_ratio={ffl_mask_ratio!r} is not allowed; use a number in (0, 1) "
                "(002: 0.75)"
            )
        self.mask_ratio = float(ffl_mask_ratio)
        if not isinstance(distil_detach_mean, bool):
            raise ValueError(
                f"method.distil.detach_mean must be true or false, got {distil_detach_mean!r}"
            )
        self.detach_mean = distil_detach_mean
        if (
            isinstance(distil_temperature, bool)
            or not isinstance(distil_temperature, (int, float))
            or not distil_temperature > 0
        ):
            raise ValueError(
                f"method.distil.temperature={distil_temperature!r} is not allowed; use a number "
                "> 0 (002: 4)"
            )
        self.distil_temperature = float(distil_temperature)
        if not isinstance(norm_pix_loss, bool):
            raise ValueError(f"method.norm_pix_loss must be true or false, got {norm_pix_loss!r}")
        self.norm_pix_loss = norm_pix_loss
        metrics = ["simfle/loss", "simfle/gfl"]
        if self.ffl_enabled:
            size = ffl_img_size if ffl_img_size is not None else self.info.img_size
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(
                    f"method.ffl.img_size={ffl_img_size!r} is not allowed; use a positive integer "
                    "(002: 112) or null for the data's size (data.img_size)"
                )
            channels = self.info.channels or 3
            self.feature_stage, width = self._check_stage(ffl_feature_stage)
            self.facemae = FaceMAE(
                width, ffl_groups, img_size=size, patch=ffl_patch,
                in_chans=channels, encoder=ffl_encoder, decoder_depth=decoder_depth,
                decoder_dim=decoder_dim, decoder_heads=decoder_heads,
                grouping_init=ffl_grouping_init,
            )  # fmt: skip
            n_patches = self.facemae.num_patches
            if (
                int(n_patches * (1 - self.mask_ratio)) < 1
                or int(n_patches * (1 - self.mask_ratio)) >= n_patches
            ):
                raise ValueError(
                    f"method.ffl.mask_ratio={ffl_mask_ratio} keeps no patch (or masks none) of "
                    f"the {n_patches} patches of a {size}-px FFL input with ffl.patch={ffl_patch}"
                )
            metrics += ["simfle/rec", "simfle/group"]
            if self.connection == "distil":
                self.distil_gfl = make_head("mlp", backbone.num_features, distil_hidden_dim,
                                            distil_dim, "distil")  # fmt: skip
                self.distil_ffl = make_head("mlp", self.facemae.embed_dim, distil_hidden_dim,
                                            distil_dim, "distil")  # fmt: skip
                metrics.append("simfle/distil")
        self.own_metrics = tuple(metrics)

    def _check_stage(self, stage: Any) -> tuple[int, int]:
        """``ffl.feature_stage``: which of the backbone's stage maps drives the masking (-1: the
        last, the paper's); returns (index, channels). A map of 1 x 1 at the data's size would
        give every patch one score (a fixed mask), so it is refused for semantic masking."""
        info = self.backbone.stage_info()
        if (
            isinstance(stage, bool)
            or not isinstance(stage, int)
            or not -len(info) <= stage < len(info)
        ):
            raise ValueError(
                f"method.ffl.feature_stage={stage!r} is not allowed; use an index into the "
                f"backbone's {len(info)} stage maps (-1: the last, 002's)"
            )
        chosen = info[stage]
        size = self.info.img_size
        if size is not None and self.masking == "semantic":
            side = -(-int(size) // int(chosen["reduction"]))
            if side < 2:
                raise ValueError(
                    f"method.ffl.feature_stage={stage}: the backbone's map there is {side}x{side} "
                    f"at data.img_size={size} (reduction {chosen['reduction']}), so every patch "
                    "gets the same score and semantic masking is a fixed mask; use an earlier "
                    "stage (e.g. ffl.feature_stage=1) or larger images"
                )
        return stage, int(chosen["num_chs"])

    def _build_gfl(self, name: str, knobs: dict[str, Any]) -> Method:
        if name not in SSL_METHODS:
            raise ValueError(
                f"method.gfl.method={name!r} is not allowed; use one of {', '.join(SSL_METHODS)}"
            )
        cls = METHODS.get(name)
        accepted = inspect.signature(cls.__init__).parameters
        kw: dict[str, Any] = {}
        for key, value in knobs.items():
            if value is None:
                continue
            if key not in accepted:
                path = key.replace("_", ".", 1) if key.startswith(("proj_", "pred_")) else key
                path = path.replace("gfl_", "gfl.")
                raise ValueError(
                    f"method.{path}={value!r} does not apply to gfl.method={name}; leave it null"
                )
            kw[key] = value
        return _recording(cls)(
            self.backbone, self.num_classes, info=self.info, views=list(self.views[:2]), **kw
        )

    @property
    def needs(self) -> MethodNeeds:
        return MethodNeeds(views=3, labels=False)

    def handoff_modules(self) -> dict[str, nn.Module]:
        """Only the backbone goes on (GFL heads, target, FaceMAE and projectors are dropped)."""
        return {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.pooled(images)

    def on_train_start(self, ctx) -> None:
        self.gfl.on_train_start(ctx)

    @torch.no_grad()
    def after_optimizer_step(self, ctx: StepContext) -> None:
        self.gfl.after_optimizer_step(ctx)

    # --- FFL ------------------------------------------------------------------------------
    def _feature_map(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's map at ``ffl.feature_stage`` [N, C', h, w] (the last: 002's)."""
        return self.backbone.features(images, stages=True).stages[self.feature_stage]

    def ffl_input(self, origin: torch.Tensor) -> torch.Tensor:
        """The FFL view resized to ``ffl.img_size`` (bilinear, antialiased when shrinking)."""
        s = self.facemae.img_size
        if origin.shape[-1] == s and origin.shape[-2] == s:
            return origin
        return F.interpolate(origin, size=(s, s), mode="bilinear", align_corners=False,
                             antialias=s < origin.shape[-1])  # fmt: skip

    def ffl(self, origin: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """FaceMAE on the FFL view: losses, mask [N, L], scores [N, L], pred, latent."""
        if self.connection == "distil":
            with torch.no_grad():  # the authors' code: the masking's feature map is not trained
                fmap = self._feature_map(origin)
        else:
            fmap = self._feature_map(origin)
        act = self.facemae.grouping(fmap)
        g_loss = grouping_loss(act, self.facemae.groups, self.grouping_form)
        imgs = self.ffl_input(origin)
        scores = patch_scores(self.facemae.score_map(act, generator), self.facemae.img_size,
                              self.facemae.patch)  # fmt: skip
        if self.masking == "semantic":
            ids_keep, mask, ids_restore = semantic_masking(scores, self.mask_ratio, self.mask_order)
        else:
            ids_keep, mask, ids_restore = random_masking(
                imgs.shape[0], scores.shape[1], self.mask_ratio, device=imgs.device,
                generator=generator,
            )  # fmt: skip
        latent = self.facemae.encode(imgs, ids_keep)
        pred = self.facemae.decoder(latent, ids_restore)
        rec = mae_loss(imgs, pred, mask, self.facemae.patch, self.norm_pix_loss)
        return {"rec": rec, "group": g_loss, "mask": mask, "scores": scores, "pred": pred,
                "latent": latent, "imgs": imgs}  # fmt: skip

    # --- the step -------------------------------------------------------------------------
    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        v1, v2, origin = batch["views"]
        self.gfl.pooled_seen = {}
        gfl = self.gfl.loss(v1, v2)
        logs: dict[str, torch.Tensor] = {"simfle/gfl": gfl.detach()}
        loss = gfl
        if self.ffl_enabled:
            out = self.ffl(origin, ctx.generator if ctx is not None else None)
            loss = loss + out["rec"] + self.beta * out["group"]
            logs["simfle/rec"] = out["rec"].detach()
            logs["simfle/group"] = out["group"].detach()
            if self.connection == "distil":
                seen = self.gfl.pooled_seen
                y1 = seen.get(id(v1))
                y1 = y1 if y1 is not None else self.backbone.pooled(v1)
                y2 = seen.get(id(v2))
                y2 = y2 if y2 is not None else self.backbone.pooled(v2)
                m = self.distil_ffl(self.facemae.representation(out["latent"]))
                d = distillation_loss([m, self.distil_gfl(y1), self.distil_gfl(y2)],
                                      self.distil_temperature, self.detach_mean)  # fmt: skip
                loss = loss + self.alpha * d
                logs["simfle/distil"] = d.detach()
        self.gfl.pooled_seen = {}
        logs["simfle/loss"] = loss.detach()
        return StepOutput(loss=loss, logs=logs)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            "method 'simfle' is a label-free pre-training stage and has no class scores; probe or "
            "fine-tune its backbone in a later stage (recipe=simfle_linear)"
        )

    @torch.no_grad()
    def log_images(self, batch: dict) -> dict[str, torch.Tensor]:
        """One row per image of a fixed batch: FFL input | masked (semantic mask) | score map |
        reconstruction, float [3, H', W'] (group draw and random masking seeded with 0)."""
        if not self.ffl_enabled:
            return {}
        images = batch["image"][:GRID_ROWS]
        was_training = self.training
        self.eval()
        try:
            gen = torch.Generator(device=images.device).manual_seed(0)
            out = self.ffl(images, gen)
        finally:
            self.train(was_training)
        p, c, grid = self.facemae.patch, self.facemae.in_chans, self.facemae.grid
        target = patchify(out["imgs"], p)
        pred = out["pred"]
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            std = (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5
            pred = pred * std + mean
        w = out["mask"].unsqueeze(-1)
        masked = unpatchify(target * (1 - w), p, c, grid)
        recon = unpatchify(target * (1 - w) + pred * w, p, c, grid)
        score = out["scores"].view(-1, 1, *grid)
        score = F.interpolate(score, size=out["imgs"].shape[-2:], mode="nearest")
        rows = torch.cat(
            [_display(out["imgs"]), _display(masked), _display(score), _display(recon)], dim=3
        )
        grid_img = torch.cat(list(rows), dim=1)  # [3, rows * S, 4 * S]
        return {"simfle/semantic_mask": grid_img.clamp(0, 1).float().cpu()}
