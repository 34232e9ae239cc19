"""Masked autoencoder pre-training (MAE; 004 Sec. 3.1 and Figs. 2-3; 000 Algorithm 1 lines 1-6, Eq. 2).

A label-free stage: random masking of ``mask_ratio`` of the patches (per sample, MAE's noise
argsort), the ViT encoder on the visible patches, a light decoder (``decoder.depth``,
``decoder.dim``, ``decoder.heads``) predicting every patch's pixels, and the MSE on the masked
patches only (``norm_pix_loss``: per-patch normalised targets).  The step logs ``mim/loss``; the
encoder (``backbone``) is handed to the next stage in timm naming (``encoder_state_dict``), the
decoder is dropped (000: "the encoder is taken for contrastive fine-tuning ... while the decoder is
dropped").
"""

from __future__ import annotations

import torch
from torch import nn

from fer_core.losses.mim import mae_loss, patchify, unpatchify
from fer_core.methods.base import Method, MethodNeeds, StepContext, StepOutput, register_method
from fer_core.models.mim import MAEDecoder, check_mask_ratio, in_chans_of, mae_encode, vit_of

GRID_ROWS = 4  # images shown in the reconstruction grid


def _display(x: torch.Tensor) -> torch.Tensor:
    """Per-image min-max scaling to [0, 1] and 3 channels: [N, C, H, W] -> [N, 3, H, W]."""
    lo = x.flatten(1).min(dim=1).values.view(-1, 1, 1, 1)
    hi = x.flatten(1).max(dim=1).values.view(-1, 1, 1, 1)
    x = (x - lo) / (hi - lo).clamp_min(1e-8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]


@register_method("mae")
class MaskedAutoencoder(Method):
    """MAE pre-training stage; knobs as in ``conf/method/mae.yaml`` (defaults mirror it, 000/004)."""

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
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        decoder_depth: int = 8,
        decoder_dim: int = 512,
        decoder_heads: int = 16,
        **kw,
    ) -> None:
        super().__init__(backbone, num_classes, **kw)
        vit = vit_of(backbone)
        self.patch_size = int(vit.patch_embed.patch_size[0])
        self.grid = tuple(int(g) for g in vit.patch_embed.grid_size)
        self.in_chans = in_chans_of(vit)
        self.mask_ratio = check_mask_ratio(mask_ratio, self.grid[0] * self.grid[1])
        if not isinstance(norm_pix_loss, bool):
            raise ValueError(f"method.norm_pix_loss must be true or false, got {norm_pix_loss!r}")
        self.norm_pix_loss = norm_pix_loss
        self.decoder = MAEDecoder(
            vit.embed_dim,
            self.patch_size**2 * self.in_chans,
            self.grid,
            vit.num_prefix_tokens,
            depth=decoder_depth,
            dim=decoder_dim,
            heads=decoder_heads,
        )

    def forward(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """images [N, C, H, W] -> (loss, pred [N, L, p*p*C], mask [N, L])."""
        latent, mask, ids_restore = mae_encode(
            vit_of(self.backbone), images, self.mask_ratio, generator
        )
        pred = self.decoder(latent, ids_restore)
        loss = mae_loss(images, pred, mask, self.patch_size, self.norm_pix_loss)
        return loss, pred, mask

    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        loss, _, _ = self(batch["image"], ctx.generator)
        return StepOutput(loss=loss, logs={"mim/loss": loss.detach()})

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(
            "method 'mae' is a label-free pre-training stage and has no class scores; "
            "evaluate it by mim/loss or fine-tune/probe its encoder in a later stage"
        )

    @torch.no_grad()
    def log_images(self, batch: dict) -> dict[str, torch.Tensor]:
        """A grid with one row per image: original | masked | reconstruction, float [3, H', W'].

        The reconstruction pastes the predicted masked patches onto the visible ones; with
        ``norm_pix_loss`` the predictions are mapped back with each patch's true mean and
        standard deviation (only for display).
        """
        images = batch["image"][:GRID_ROWS]
        was_training = self.training
        self.eval()
        try:
            gen = torch.Generator(device=images.device).manual_seed(0)
            _, pred, mask = self(images, gen)
        finally:
            self.train(was_training)
        target = patchify(images, self.patch_size)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            std = (target.var(dim=-1, keepdim=True) + 1e-6) ** 0.5
            pred = pred * std + mean
        w = mask.unsqueeze(-1)
        masked = unpatchify(target * (1 - w), self.patch_size, self.in_chans, self.grid)
        recon = unpatchify(target * (1 - w) + pred * w, self.patch_size, self.in_chans, self.grid)
        rows = torch.cat([_display(images), _display(masked), _display(recon)], dim=3)
        grid = torch.cat(list(rows), dim=1)  # [3, rows * H, 3 * W]
        return {"mae/reconstruction": grid.clamp(0, 1).float().cpu()}
