"""MaskFeat pre-training with HOG targets (001 Sec. III and Fig. 3; Wei et al., 2022).

A label-free stage: ``mask_ratio`` (001: 0.4) of the patches are masked per sample (MAE-style noise
argsort, exact count per sample); masked patch embeddings are replaced by a learnable mask token
(MaskFeat; 001's text describes an encoder "which only acts on the visible and unmasked patches",
but cites MaskFeat's protocol, which keeps the tokens in place); a linear head on every patch
token predicts that patch's HOG descriptor (:mod:`fer_core.losses.hog`: ``hog.bins`` 9 orientation
bins, ``hog.cell`` 8-pixel cells, per colour channel, per-cell L2 normalisation; as MaskFeat's
``HOGLayerC`` by default: ``hog.window=gaussian`` weights magnitudes by a Gaussian window over each
patch, ``hog.orientation=maskfeat`` its angle convention), and the loss is
the MSE on the masked tokens only.  Logs ``mim/loss``; the encoder goes to the next stage in timm
naming, the mask token and the HOG head are dropped.
"""

from __future__ import annotations

import torch
from torch import nn

from fer_core.losses.hog import GRADIENTS, ORIENTATIONS, WINDOWS, hog_dim, hog_patch_targets
from fer_core.losses.mim import masked_mse
from fer_core.methods.base import Method, MethodNeeds, StepContext, StepOutput, register_method
from fer_core.models.mim import (
    check_mask_ratio,
    in_chans_of,
    maskfeat_encode,
    random_masking,
    vit_of,
)


@register_method("maskfeat")
class MaskFeat(Method):
    """MaskFeat pre-training stage; knobs as in ``conf/method/maskfeat.yaml`` (defaults mirror it)."""

    needs = MethodNeeds(labels=False)
    selection_metric = "mim/loss"  # the best checkpoint has the lowest reconstruction loss
    selection_mode = "min"
    own_metrics = ("mim/loss",)

    def handoff_modules(self) -> dict[str, nn.Module]:
        """Only the encoder goes on: the decoder / HOG predictor is dropped (000 Sec. 3.1)."""
        return {}

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        mask_ratio: float = 0.4,
        hog_bins: int = 9,
        hog_cell: int = 8,
        hog_gradient: str = "sobel",
        hog_window: str = "gaussian",
        hog_orientation: str = "maskfeat",
        **kw,
    ) -> None:
        super().__init__(backbone, num_classes, **kw)
        vit = vit_of(backbone)
        self.patch_size = int(vit.patch_embed.patch_size[0])
        self.grid = tuple(int(g) for g in vit.patch_embed.grid_size)
        in_chans = in_chans_of(vit)
        self.mask_ratio = check_mask_ratio(mask_ratio, self.grid[0] * self.grid[1])
        if not isinstance(hog_bins, int) or hog_bins < 1:
            raise ValueError(f"method.hog.bins must be a positive integer, got {hog_bins!r}")
        if not isinstance(hog_cell, int) or hog_cell < 1 or self.patch_size % hog_cell:
            raise ValueError(
                f"method.hog.cell must divide the patch size {self.patch_size}, got {hog_cell!r}"
            )
        if hog_gradient not in GRADIENTS:
            raise ValueError(
                f"method.hog.gradient must be one of {GRADIENTS}, got {hog_gradient!r}"
            )
        if hog_window not in WINDOWS:
            raise ValueError(f"method.hog.window must be one of {WINDOWS}, got {hog_window!r}")
        if hog_orientation not in ORIENTATIONS:
            raise ValueError(
                f"method.hog.orientation must be one of {ORIENTATIONS}, got {hog_orientation!r}"
            )
        self.hog_bins, self.hog_cell, self.hog_gradient = hog_bins, hog_cell, hog_gradient
        self.hog_window, self.hog_orientation = hog_window, hog_orientation
        self.mask_token = nn.Parameter(torch.zeros(1, 1, vit.embed_dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.head = nn.Linear(vit.embed_dim, hog_dim(in_chans, self.patch_size, hog_bins, hog_cell))
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """HOG targets of every patch: [N, C, H, W] -> [N, L, C * bins * (p / cell)^2] (fp32)."""
        with torch.no_grad(), torch.autocast(images.device.type, enabled=False):
            return hog_patch_targets(
                images.float(),
                self.patch_size,
                bins=self.hog_bins,
                cell=self.hog_cell,
                gradient=self.hog_gradient,
                orientation=self.hog_orientation,
                window=self.hog_window,
            )

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images [N, C, H, W] -> (loss, pred [N, L, D_hog], mask [N, L])."""
        n = images.shape[0]
        _, mask, _ = random_masking(
            n,
            self.grid[0] * self.grid[1],
            self.mask_ratio,
            device=images.device,
            generator=generator,
        )
        tokens = maskfeat_encode(vit_of(self.backbone), images, mask, self.mask_token)
        pred = self.head(tokens)
        target = self.targets(images).to(pred.dtype)
        return masked_mse(pred, target, mask), pred, mask

    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        loss, _, _ = self(batch["image"], ctx.generator)
        return StepOutput(loss=loss, logs={"mim/loss": loss.detach()})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            "method 'maskfeat' is a label-free pre-training stage and has no class scores; "
            "evaluate it by mim/loss or fine-tune/probe its encoder in a later stage"
        )
