"""Masked-image-modelling pieces on any timm ``VisionTransformer``: MAE (004; 000 stage 1) and MaskFeat (001).

- :func:`random_masking`: MAE's per-sample masking (uniform noise, ``argsort``, keep the first
  ``int(L * (1 - mask_ratio))`` patches), so every sample keeps exactly the same number of patches.
- :func:`mae_encode`: the encoder sees only the visible patches (position embeddings are added
  before the patches are dropped, class/register tokens kept), as in MAE.
- :class:`MAEDecoder`: MAE's light decoder (``decoder_depth`` blocks of width ``decoder_dim``, fixed
  2-D sin-cos position embeddings, a shared learnable mask token) predicting the pixels of every patch.
- :func:`maskfeat_encode`: MaskFeat's path: masked patch embeddings are *replaced* by a learnable
  mask token (not dropped) before the position embeddings, and the encoder sees all ``L`` tokens.

The functions take the timm module (``Backbone.model``) rather than storing it, so the method that
uses them owns the encoder exactly once (its ``backbone``), and the encoder's weights stay in timm
naming for the hand-off to the next stage.

Shapes: ``imgs`` [N, C, H, W]; ``L = grid_h * grid_w`` patches; ``P`` = number of prefix tokens
(class/register); ``mask`` [N, L] with 0 = keep, 1 = remove; ``ids_restore`` [N, L].
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from fer_core.models.backbones import is_token_local


def vit_of(backbone: nn.Module) -> VisionTransformer:
    """The timm ViT inside a :class:`fer_core.models.backbones.Backbone` (or the ViT itself)."""
    vit = getattr(backbone, "model", backbone)
    if not isinstance(vit, VisionTransformer):
        raise ValueError(
            f"masked-image pre-training needs a timm VisionTransformer backbone, got "
            f"{type(vit).__name__}; choose a ViT model (e.g. model=vit_tiny_cpu)"
        )
    if getattr(vit, "dynamic_img_size", False):
        raise ValueError("masked-image pre-training does not support dynamic_img_size ViTs")
    if not is_token_local(vit.patch_embed):
        raise ValueError(
            "masked-image pre-training needs a token-local patch embedding (model.stem=patch or "
            "model.stem=hmlp, e.g. model=vit_patch_cpu): a convolutional stem (model.stem=conv) "
            "lets every token see its masked neighbours"
        )
    return vit


def in_chans_of(vit: VisionTransformer) -> int:
    """Input channels of a token-local patch embedding (its first convolution's)."""
    proj = vit.patch_embed.proj
    first = (
        proj
        if isinstance(proj, nn.Conv2d)
        else next(m for m in proj.modules() if isinstance(m, nn.Conv2d))
    )
    return int(first.in_channels)


def check_mask_ratio(mask_ratio: float, num_patches: int | None = None) -> float:
    """Validate ``mask_ratio`` in [0, 1) (and that at least one patch stays visible)."""
    if not 0.0 <= float(mask_ratio) < 1.0:
        raise ValueError(f"method.mask_ratio must be in [0, 1), got {mask_ratio!r}")
    if num_patches is not None and int(num_patches * (1 - mask_ratio)) < 1:
        raise ValueError(
            f"method.mask_ratio={mask_ratio} keeps no patch of {num_patches}; use a smaller ratio"
        )
    return float(mask_ratio)


def random_masking(
    n: int,
    num_patches: int,
    mask_ratio: float,
    *,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's per-sample random masking.

    Returns ``ids_keep`` [N, K] (long, ``K = int(L * (1 - mask_ratio))``), ``mask`` [N, L] (float,
    0 keep, 1 remove, exactly ``L - K`` ones per row) and ``ids_restore`` [N, L] (the inverse
    permutation that puts shuffled tokens back in place). Reproducible for a seeded ``generator``.
    """
    check_mask_ratio(mask_ratio, num_patches)
    keep = int(num_patches * (1 - mask_ratio))
    noise_device = generator.device if generator is not None else device
    noise = torch.rand(n, num_patches, generator=generator, device=noise_device)
    noise = noise.to(device) if device is not None else noise
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]
    mask = torch.ones(n, num_patches, device=noise.device)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return ids_keep, mask, ids_restore


def _run_blocks(vit: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    x = vit.norm_pre(x)
    x = vit.blocks(x)
    return vit.norm(x)


def mae_encode(
    vit: VisionTransformer,
    imgs: torch.Tensor,
    mask_ratio: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE encoder on the visible patches only.

    ``imgs`` [N, C, H, W] -> ``latent`` [N, P + K, D], ``mask`` [N, L], ``ids_restore`` [N, L].
    """
    x = vit.patch_embed(imgs)  # [N, L, D]
    x = vit._pos_embed(x)  # [N, P + L, D]: prefix tokens and position embeddings added
    p = vit.num_prefix_tokens
    prefix, patches = x[:, :p], x[:, p:]
    n, length, d = patches.shape
    ids_keep, mask, ids_restore = random_masking(
        n, length, mask_ratio, device=x.device, generator=generator
    )
    kept = torch.gather(patches, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
    latent = _run_blocks(vit, torch.cat([prefix, kept], dim=1))
    return latent, mask.to(x.dtype), ids_restore


def maskfeat_encode(
    vit: VisionTransformer, imgs: torch.Tensor, mask: torch.Tensor, mask_token: torch.Tensor
) -> torch.Tensor:
    """MaskFeat encoder: masked patch embeddings replaced by ``mask_token`` [1, 1, D].

    ``imgs`` [N, C, H, W], ``mask`` [N, L] (1 = masked) -> patch tokens [N, L, D] (prefix dropped).
    """
    x = vit.patch_embed(imgs)  # [N, L, D]
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask {tuple(mask.shape)} must be [N, L] = {tuple(x.shape[:2])}")
    w = mask.unsqueeze(-1).to(x.dtype)
    x = x * (1.0 - w) + mask_token.to(x.dtype) * w
    x = _run_blocks(vit, vit._pos_embed(x))
    return x[:, vit.num_prefix_tokens :]


def sincos_pos_embed_2d(dim: int, grid: tuple[int, int]) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos position embeddings: [gh * gw, dim] (half the channels per axis)."""
    if dim % 4:
        raise ValueError(f"method.decoder.dim must be a multiple of 4, got {dim!r}")
    gh, gw = grid
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4.0))

    def axis(pos: torch.Tensor) -> torch.Tensor:  # [M] -> [M, dim / 2]
        out = pos.reshape(-1, 1).double() * omega.reshape(1, -1)
        return torch.cat([out.sin(), out.cos()], dim=1)

    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    # MAE: the first half encodes the column (w) coordinate, the second the row (h).
    return torch.cat([axis(cols.flatten()), axis(rows.flatten())], dim=1).float()


class MAEDecoder(nn.Module):
    """MAE's decoder: latent [N, P + K, D] + ``ids_restore`` [N, L] -> pixels [N, L, patch_dim]."""

    def __init__(
        self,
        embed_dim: int,
        patch_dim: int,
        grid: tuple[int, int],
        num_prefix_tokens: int,
        *,
        depth: int = 8,
        dim: int = 512,
        heads: int = 16,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"method.decoder.depth must be a positive integer, got {depth!r}")
        if not isinstance(dim, int) or dim < 4:
            raise ValueError(f"method.decoder.dim must be an integer >= 4, got {dim!r}")
        if not isinstance(heads, int) or heads < 1 or dim % heads:
            raise ValueError(
                f"method.decoder.heads must be a positive divisor of decoder.dim={dim}, got {heads!r}"
            )
        self.num_prefix_tokens = int(num_prefix_tokens)
        self.num_patches = int(grid[0] * grid[1])
        self.embed = nn.Linear(embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        pos = torch.zeros(1, self.num_prefix_tokens + self.num_patches, dim)
        pos[0, self.num_prefix_tokens :] = sincos_pos_embed_2d(dim, tuple(grid))
        self.register_buffer("pos_embed", pos, persistent=False)  # fixed, derived from the grid
        self.blocks = nn.Sequential(
            *[Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        p = self.num_prefix_tokens
        x = self.embed(latent)  # [N, P + K, dim]
        n, _, dim = x.shape
        length = ids_restore.shape[1]
        if length != self.num_patches:
            raise ValueError(f"decoder built for {self.num_patches} patches, got {length}")
        visible = x[:, p:]
        fill = self.mask_token.expand(n, length - visible.shape[1], -1)
        patches = torch.cat([visible, fill], dim=1)  # shuffled order
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dim))
        x = torch.cat([x[:, :p], patches], dim=1) + self.pos_embed.to(x.dtype)
        x = self.norm(self.blocks(x))
        return self.pred(x[:, p:])  # [N, L, patch_dim]
