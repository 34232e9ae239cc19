"""Label-disambiguation decoder of 001 (Sec. III-C, Fig. 2), after Query2Label.

One learnable query per class (``Q`` [K, d]) cross-attends to the backbone's patch tokens
``F`` [N, HW, d] (no class token) through a small transformer decoder; each class's output
embedding gives one logit through a per-class linear map (Query2Label's group-wise linear).
The logits serve both as class scores (softmax in Eq. 1) and, through a sigmoid, as ``phi`` of the
revision (Eq. 3).

Paper vs. inspiration: 001 gives 2 decoder blocks (Sec. IV-C) but no head count; the defaults of
4 heads and no self-attention between the queries follow Query2Label, its stated inspiration
([52], [53]); both are knobs (``decoder.heads``, ``decoder.self_attn``). ``decoder.dim`` defaults
to the backbone width (the paper's ``d``); another width adds a linear projection of the tokens.
The blocks are pre-norm (LayerNorm before each sub-layer, a final LayerNorm), which trains more
stably from scratch than DETR's post-norm at these small sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class DecoderOutput:
    """``logits`` [N, K] per-class scores; ``queries`` [N, K, d] the decoded class embeddings."""

    logits: torch.Tensor
    queries: torch.Tensor


class DecoderBlock(nn.Module):
    """[self-attention over the queries] -> cross-attention to the tokens -> MLP (pre-norm)."""

    def __init__(
        self, dim: int, heads: int, self_attn: bool, mlp_ratio: float = 4.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.self_attn = (
            nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
            if self_attn
            else None
        )
        self.norm_sa = nn.LayerNorm(dim) if self_attn else None
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, q: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """q [N, K, d], tokens [N, L, d] -> [N, K, d]."""
        if self.self_attn is not None:
            h = self.norm_sa(q)
            q = q + self.self_attn(h, h, h, need_weights=False)[0]
        kv = self.norm_kv(tokens)
        q = q + self.cross_attn(self.norm_q(q), kv, kv, need_weights=False)[0]
        return q + self.mlp(self.norm_mlp(q))


class LabelDecoder(nn.Module):
    """Class queries cross-attending to patch tokens; per-class logits.

    Args:
        in_dim: width of the backbone's patch tokens.
        num_classes: K, one query per class.
        dim: decoder width (``None``: ``in_dim``). layers: decoder blocks (paper: 2).
        heads: attention heads (must divide ``dim``). self_attn: self-attention between queries.
        dropout: attention / MLP dropout.
    Shapes: ``forward(tokens [N, L, in_dim]) -> DecoderOutput(logits [N, K], queries [N, K, dim])``.
    ``query_embed`` [K, dim] is the learnable label embedding that Eq. 2 regularises.
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        *,
        dim: int | None = None,
        layers: int = 2,
        heads: int = 4,
        self_attn: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dim = in_dim if dim is None else dim
        if not isinstance(layers, int) or layers < 1:
            raise ValueError(f"decoder.layers must be an integer >= 1, got {layers!r}")
        if not isinstance(heads, int) or heads < 1:
            raise ValueError(f"decoder.heads must be an integer >= 1, got {heads!r}")
        if not isinstance(dim, int) or dim < 1 or dim % heads:
            raise ValueError(
                f"decoder.dim must be a positive integer divisible by decoder.heads={heads}, got {dim!r}"
                + (" (the backbone width)" if dim == in_dim else "")
            )
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.dim = dim
        self.input_proj = nn.Identity() if dim == in_dim else nn.Linear(in_dim, dim)
        self.query_embed = nn.Parameter(torch.randn(num_classes, dim) * 0.02)
        self.blocks = nn.ModuleList(
            DecoderBlock(dim, heads, self_attn, dropout=dropout) for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        # Group-wise linear (Query2Label): logit_k = <W_k, h_k> + b_k.
        self.class_weight = nn.Parameter(torch.empty(num_classes, dim))
        self.class_bias = nn.Parameter(torch.zeros(num_classes))
        nn.init.trunc_normal_(self.class_weight, std=dim**-0.5)

    def forward(self, tokens: torch.Tensor) -> DecoderOutput:
        if tokens.dim() != 3:
            raise ValueError(f"tokens must be [N, L, D], got {tuple(tokens.shape)}")
        mem = self.input_proj(tokens)  # [N, L, d]
        q = self.query_embed.unsqueeze(0).expand(tokens.shape[0], -1, -1)  # [N, K, d]
        for block in self.blocks:
            q = block(q, mem)
        q = self.norm(q)
        logits = (q * self.class_weight).sum(dim=-1) + self.class_bias  # [N, K]
        return DecoderOutput(logits=logits, queries=q)
