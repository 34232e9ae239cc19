"""FaceMAE, SimFLE's fine-grained branch (002 Sec. 3.2, Fig. 2 right): channel grouping,
semantic masking and a masked autoencoder on the FFL input.

- ``grouping``: a 1x1 convolution + BN + ReLU over the backbone's last feature map [N, C', h', w']
  (the authors' ``ChannelGroupingLayer``), trained by the grouping loss (Eq. 2,
  ``losses/simfle.grouping_loss``). ``grouping_init``: ``random`` (PyTorch's default) or ``code``
  (the authors' weights 1, biases 0.1). With ``code`` every output channel is the same map, all
  channel cosines are 1, and the cosine's gradient at 1 is zero: the grouping loss then has no
  gradient and the convolution never moves (measured, tests/methods/test_simfle.py), so the
  score map stays the sum of all channels whichever group is drawn.
- :meth:`FaceMAE.score_map`: one channel group per sample, drawn at random, summed over its
  ``C' / N_g`` channels -> the score map [N, 1, h', w'] (Eq. 3's input).
- ``encoder``: a timm ViT (a registered backbone, e.g. ``vit_base`` = the authors' ViT-B/16, or
  ``vit_tiny_cpu``) built for the FFL input size and patch, run on the visible patches only, as
  MAE; ``decoder``: MAE's decoder (``models/mim.MAEDecoder``) predicting every patch's pixels.

The masking itself (argsort of the patch scores) carries no gradient: the score map learns only
through the grouping loss, and the backbone only through what the method connects to it (the
distillation of Eq. 5, or the grouping loss with ``connection=direct``; methods/simfle.py).

Shapes: ``imgs`` [N, C, S, S] (S = the FFL input size, s = ``patch``, ``L = (S / s)^2``);
``ids_keep`` [N, K]; ``latent`` [N, 1 + K, D] (class token first); ``pred`` [N, L, s*s*C].
"""

from __future__ import annotations

import torch
from torch import nn

from fer_core.models.backbones import create_backbone
from fer_core.models.mim import MAEDecoder, vit_of

GROUPING_INITS = ("random", "code")


class FaceMAE(nn.Module):
    """Channel grouping over ``in_channels`` backbone channels + an MAE on ``img_size`` images."""

    def __init__(
        self,
        in_channels: int,
        groups: int,
        *,
        img_size: int,
        patch: int,
        in_chans: int,
        encoder: str,
        decoder_depth: int,
        decoder_dim: int,
        decoder_heads: int,
        grouping_init: str = "random",
    ) -> None:
        super().__init__()
        if grouping_init not in GROUPING_INITS:
            raise ValueError(
                f"method.ffl.grouping_init={grouping_init!r} is not allowed; use one of "
                f"{', '.join(GROUPING_INITS)}"
            )
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"method.ffl.groups={groups!r} is not allowed; use an integer >= 1")
        if in_channels % groups:
            raise ValueError(
                f"method.ffl.groups={groups} does not divide the backbone's {in_channels} "
                f"channels; use a divisor of {in_channels} (002: 32 groups of ResNet-50's 2048)"
            )
        if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1 or img_size % patch:
            raise ValueError(
                f"method.ffl.patch={patch!r} does not divide the FFL input size {img_size} "
                f"(method.ffl.img_size); use a divisor of {img_size} (002: 16 at 112 px)"
            )
        self.groups = int(groups)
        self.img_size = int(img_size)
        self.patch = int(patch)
        self.in_chans = int(in_chans)
        conv = nn.Conv2d(in_channels, in_channels, kernel_size=1)
        if grouping_init == "code":  # the authors' initialisation
            nn.init.constant_(conv.weight, 1.0)
            nn.init.constant_(conv.bias, 0.1)
        self.grouping = nn.Sequential(conv, nn.BatchNorm2d(in_channels), nn.ReLU())
        self.encoder = create_backbone(
            encoder, img_size=self.img_size, in_chans=self.in_chans, patch_size=self.patch
        )
        vit = vit_of(self.encoder)
        self.grid = tuple(int(g) for g in vit.patch_embed.grid_size)
        self.num_patches = self.grid[0] * self.grid[1]
        self.embed_dim = int(vit.embed_dim)
        self.decoder = MAEDecoder(
            vit.embed_dim,
            self.patch**2 * self.in_chans,
            self.grid,
            vit.num_prefix_tokens,
            depth=decoder_depth,
            dim=decoder_dim,
            heads=decoder_heads,
        )

    def score_map(
        self, act: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Grouped map ``act`` [N, C', h, w] -> one random group's channel sum [N, 1, h, w]."""
        n, c, h, w = act.shape
        dev = generator.device if generator is not None else act.device
        pick = torch.randint(0, self.groups, (n,), generator=generator, device=dev).to(act.device)
        per = act.view(n, self.groups, c // self.groups, h, w)
        return per[torch.arange(n, device=act.device), pick].sum(dim=1, keepdim=True)

    def encode(self, imgs: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        """MAE's encoder on the patches ``ids_keep`` [N, K] of ``imgs`` -> latent [N, P + K, D]
        (position embeddings added before the patches are dropped; class token kept)."""
        vit = vit_of(self.encoder)
        x = vit._pos_embed(vit.patch_embed(imgs))  # [N, P + L, D]
        p = vit.num_prefix_tokens
        prefix, patches = x[:, :p], x[:, p:]
        d = patches.shape[-1]
        kept = torch.gather(patches, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        x = vit.norm_pre(torch.cat([prefix, kept], dim=1))
        return vit.norm(vit.blocks(x))

    def representation(self, latent: torch.Tensor) -> torch.Tensor:
        """FaceMAE's representation for distillation: the mean of the visible patch tokens
        [N, D] (the authors' ``latent[:, 1:].mean(1)``)."""
        return latent[:, vit_of(self.encoder).num_prefix_tokens :].mean(dim=1)
