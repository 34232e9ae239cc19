"""Backbones: timm models (``pretrained=False``) behind one small interface the methods use.

``create_backbone(name, img_size=, in_chans=, pool=, checkpoint=, **timm_kwargs) -> Backbone``;
``list_backbones()`` names every registered entry. A :class:`Backbone` exposes what the papers'
methods need: patch tokens (MAE/MaskFeat/PLL decoders), the class token, a pooled feature
(``pool: gap|token|flat``, 000 Table IV; ``flat``: issue 17) and multi-stage maps (003's cross-layer losses).

Shapes: ``x`` [N, C, H, W] -> ``BackboneFeatures(patch [N, L, D], cls [N, D] | None,
pooled [N, D], stages list[[N, C_j, H_j, W_j]] | None)``. A ResNet's last map [N, D, h, w]
is flattened into ``patch`` tokens [N, h*w, D].

Defaults live in one place, the model's config group ``fer_core/conf/model/<name>.yaml`` (what
every run uses): a registered entry reads that file (:func:`group_defaults`) for every key other
than name/pool/checkpoint/img_size/stage_indices, so ``create_backbone("vit_tiny_cpu", img_size=48,
in_chans=1)`` builds the model a run with ``model=vit_tiny_cpu`` builds. The entries write no
architecture value of their own except what the YAML does not name: a ResNet's block type, layers
and widths. This is the one, deliberate exception to "only engine/build.py reads configs": the
entry reads its own group's defaults file, never a run's config (``engine/build.py`` composes
that and passes the chosen group's keys as ``**timm_kwargs``, which win over the file's).
``tests/test_defaults.py`` checks that the two paths build the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from timm.layers import PatchEmbed, resample_abs_pos_embed
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from fer_core.registry import Registry

BACKBONES: Registry[Callable[..., nn.Module]] = Registry("backbone")
POOLS = ("gap", "token", "flat")
MODEL_CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"
# keys of a model group that create_backbone / build.build_backbone take themselves
NOT_ARCHITECTURE = ("name", "pool", "checkpoint", "img_size", "stage_indices")


@dataclass
class BackboneFeatures:
    """What ``Backbone.features`` returns (shapes in the module docstring)."""

    patch: torch.Tensor
    cls: torch.Tensor | None
    pooled: torch.Tensor
    stages: list[torch.Tensor] | None = None


class Backbone(nn.Module):
    """A timm ViT or ResNet with the feature views the methods need.

    ``kind`` is ``"vit"`` or ``"resnet"``; ``num_features`` the width D; ``model`` the timm module
    (its ``state_dict`` is the timm naming used for hand-offs between stages); ViTs also expose
    ``patch_size`` and ``grid_size``; ``stage_indices`` are the blocks/stages ``features(x,
    stages=True)`` returns (ViT: chosen blocks, default the last 4; ResNet: its 4 stages).
    """

    def __init__(
        self,
        model: nn.Module,
        kind: str,
        pool: str = "gap",
        stage_indices: list[int] | int | None = None,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"model.pool must be one of {', '.join(POOLS)}, got {pool!r}")
        self.model = model
        self.kind = kind
        self.pool = pool
        self.num_features = int(model.num_features)
        if kind == "vit":
            if pool == "token" and not getattr(model, "cls_token", None) is not None:
                raise ValueError("model.pool=token needs a ViT with a class token")
            if pool == "flat" and not isinstance(getattr(model, "flat_pool", None), nn.Linear):
                raise ValueError("model.pool=flat needs a ViT built with its flat_pool projection")
            self.patch_size = int(model.patch_embed.patch_size[0])
            self.grid_size = tuple(model.patch_embed.grid_size)
            self.num_prefix_tokens = int(model.num_prefix_tokens)
            depth = len(model.blocks)
            self.stage_indices = stage_indices if stage_indices is not None else min(4, depth)
        else:
            self.patch_size = None
            self.grid_size = None
            self.num_prefix_tokens = 0
            self.stage_indices = stage_indices if stage_indices is not None else 4

    def features(self, x: torch.Tensor, stages: bool = False) -> BackboneFeatures:
        """x [N, C, H, W] -> :class:`BackboneFeatures` (see the module docstring)."""
        if self.kind == "vit":
            if stages:
                tokens, maps = self.model.forward_intermediates(x, indices=self.stage_indices)
            else:
                tokens, maps = self.model.forward_features(x), None
            patch = tokens[:, self.num_prefix_tokens :]
            cls = tokens[:, 0] if self.model.cls_token is not None else None
            if self.pool == "token":
                pooled = cls
            elif self.pool == "flat":  # where a feature is, not only which: [N, L * D] -> [N, D]
                pooled = self.model.flat_pool(patch.flatten(1))
            else:
                pooled = patch.mean(dim=1)
            return BackboneFeatures(patch=patch, cls=cls, pooled=pooled, stages=maps)
        if stages:
            fmap, maps = self.model.forward_intermediates(x, indices=self.stage_indices)
        else:
            fmap, maps = self.model.forward_features(x), None
        patch = fmap.flatten(2).transpose(1, 2)  # [N, h*w, D]
        return BackboneFeatures(patch=patch, cls=None, pooled=patch.mean(dim=1), stages=maps)

    def stage_info(self) -> list[dict[str, Any]]:
        """timm's ``feature_info`` of the maps ``features(x, stages=True)`` returns, in order:
        one dict per stage with ``num_chs`` (its channel width C_j), ``reduction`` (input side /
        map side) and ``module``. resnet_tiny_cpu: widths 32, 64, 128, 256 at reductions 4, 8, 16,
        32; a plain ViT's blocks all share one reduction (its patch size)."""
        info = list(self.model.feature_info)
        idx = self.stage_indices
        chosen = info[-int(idx) :] if isinstance(idx, int) else [info[int(i)] for i in idx]
        return [dict(d) for d in chosen]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] -> pooled feature [N, D]."""
        return self.features(x).pooled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(x)

    # --- weights ------------------------------------------------------------------------------
    def timm_state_dict(self) -> dict[str, torch.Tensor]:
        """The timm module's weights (timm naming), detached copies."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_timm_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load timm-named weights; ViT position embeddings are interpolated to this grid.

        Classifier heads in ``sd`` (``head.*``, ``fc.*``) are ignored; a different ViT patch size
        or width raises ValueError.
        """
        sd = {k: v for k, v in sd.items() if not k.startswith(("head.", "fc."))}
        own = self.model.state_dict()
        if self.kind == "vit":
            w = sd.get("patch_embed.proj.weight")
            if w is not None and w.shape != own["patch_embed.proj.weight"].shape:
                raise ValueError(
                    f"checkpoint patch embedding {tuple(w.shape)} does not fit this ViT "
                    f"{tuple(own['patch_embed.proj.weight'].shape)} (patch size / width / in_chans "
                    "must match; choose the model that was pre-trained)"
                )
            pe = sd.get("pos_embed")
            if pe is not None and pe.shape != own["pos_embed"].shape:
                sd["pos_embed"] = resample_abs_pos_embed(
                    pe,
                    new_size=list(self.grid_size),
                    num_prefix_tokens=self.num_prefix_tokens,
                )
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        # a flat_pool projection the checkpoint lacks (e.g. MAE weights of a gap ViT) starts fresh
        bad = [k for k in missing if not k.startswith(("head.", "fc.", "flat_pool."))]
        if bad or unexpected:
            raise ValueError(
                f"checkpoint does not fit backbone: missing {bad[:5]}, unexpected {unexpected[:5]}"
            )


def load_checkpoint_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Backbone weights from a file: a timm state dict, or our checkpoints (``encoder``/``model``)."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ValueError(f"model.checkpoint: no such file {str(p)!r}")
    obj = torch.load(p, map_location="cpu", weights_only=True)
    for key in ("encoder", "state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if any(k.startswith("backbone.model.") for k in obj):  # a whole Method's state dict
        obj = {
            k[len("backbone.model.") :]: v
            for k, v in obj.items()
            if k.startswith("backbone.model.")
        }
    return obj


def create_backbone(
    name: str,
    *,
    img_size: int,
    in_chans: int,
    pool: str = "gap",
    checkpoint: str | Path | None = None,
    **timm_kwargs: Any,
) -> Backbone:
    """Build registered backbone ``name``; ``timm_kwargs`` go to the timm constructor."""
    bb = BACKBONES.create(
        name, img_size=int(img_size), in_chans=int(in_chans), pool=pool, **timm_kwargs
    )
    if checkpoint:
        bb.load_timm_state_dict(load_checkpoint_file(checkpoint))
    return bb


def list_backbones() -> list[str]:
    return BACKBONES.names()


def group_defaults(name: str) -> dict[str, Any]:
    """Backbone ``name``'s architecture defaults: ``conf/model/<name>.yaml`` (read as a run reads
    it, with OmegaConf) less the keys in ``NOT_ARCHITECTURE``."""
    path = MODEL_CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"backbone {name!r} has no config group {str(path)!r} for its defaults")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return {k: v for k, v in cfg.items() if k not in NOT_ARCHITECTURE}


# --- ViTs -------------------------------------------------------------------------------------
STEMS = ("patch", "conv", "hmlp")


class ConvStemPatchEmbed(PatchEmbed):
    """A convolutional ("hybrid") patch embedding: a small ResNet stem instead of one strided conv.

    ``model.stem=conv``. The stem is resnet_tiny_cpu's deep stem, max-pool and as many BasicBlock
    stages as take the stride to ``patch_size`` (4: one stage, 8: two, 16: three, 32: four), then
    a 1 x 1 projection to ``embed_dim``; tokens, grid and ``patch_size`` are those of a patch
    embedding of the same size, so position embeddings, pooling and the PLL decoder see no
    difference. This is the ViT paper's hybrid (Dosovitskiy et al., 2021, Sec. 3.1) at CPU size:
    measured on SynthFER (the default 4-epoch recipe) it reaches val/uar 0.41 where the
    plain patch embedding stays at one predicted class. Masked-image pre-training refuses it (each
    token's receptive field covers its masked neighbours).
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        p = int(self.patch_size[0])
        if p not in (4, 8, 16, 32) or self.patch_size[0] != self.patch_size[1]:
            raise ValueError(f"model.stem=conv needs patch_size 4, 8, 16 or 32, got {p}")
        in_chans = int(self.proj.in_channels)
        embed_dim = int(self.proj.out_channels)
        res = ResNet(
            block=BasicBlock,
            layers=[1, 1, 1, 1],
            channels=(32, 64, 128, 256),
            stem_width=32,
            stem_type="deep",
            in_chans=in_chans,
            num_classes=0,
        )
        n_stages = {4: 1, 8: 2, 16: 3, 32: 4}[p]
        stages = [res.layer1, res.layer2, res.layer3, res.layer4][:n_stages]
        width = (32, 64, 128, 256)[n_stages - 1]
        self.proj = nn.Sequential(
            res.conv1, res.bn1, res.act1, res.maxpool, *stages, nn.Conv2d(width, embed_dim, 1)
        )


class HMLPPatchEmbed(PatchEmbed):
    """A hierarchical-MLP ("hMLP") patch embedding: ``model.stem=hmlp``.

    Touvron et al. 2022, "Three things everyone should know about Vision Transformers", Sec. 5:
    convolutions whose kernel equals their stride, stacked inside each patch (4 x 4, then 2 x 2 per
    further doubling: patch 8 -> 4, 2; patch 16 -> 4, 2, 2), each followed by a norm (and GELU
    between them), widths ``embed_dim / 4`` then ``embed_dim``. No receptive field crosses a patch
    boundary, so masking a patch changes no other token (``token_local``; MAE / MaskFeat accept it),
    while the stem's norms and non-linearity give the optimisation what a ResNet stem gives a
    hybrid: on SynthFER (default 4-epoch recipe) it learns where the single linear patch
    projection stays at one class (``benchmarks/results/vit.md``). ``norm`` (the stem's
    ``model.stem_norm``): ``layer`` (LayerNorm over channels at each position: per-sample and
    per-position, strictly token-local) or ``batch`` (BatchNorm, the paper's choice; its batch
    statistics pool every position of the batch).
    """

    token_local = True

    def __init__(self, *args: Any, norm: str = "layer", **kw: Any) -> None:
        super().__init__(*args, **kw)
        p = int(self.patch_size[0])
        if p not in (4, 8, 16, 32) or self.patch_size[0] != self.patch_size[1]:
            raise ValueError(f"model.stem=hmlp needs patch_size 4, 8, 16 or 32, got {p}")
        if norm not in STEM_NORMS:
            raise ValueError(
                f"model.stem_norm must be one of {', '.join(STEM_NORMS)}, got {norm!r}"
            )
        in_chans = int(self.proj.in_channels)
        dim = int(self.proj.out_channels)
        if dim % 4:
            raise ValueError(f"model.stem=hmlp needs embed_dim divisible by 4, got {dim}")
        kernels = [4] + [2] * {4: 0, 8: 1, 16: 2, 32: 3}[p]
        widths = [dim // 4] * (len(kernels) - 1) + [dim]
        layers: list[nn.Module] = []
        c = in_chans
        for i, (k, w) in enumerate(zip(kernels, widths, strict=True)):
            layers += [nn.Conv2d(c, w, kernel_size=k, stride=k), _stem_norm(norm, w)]
            if i < len(kernels) - 1:
                layers.append(nn.GELU())
            c = w
        self.proj = nn.Sequential(*layers)


STEM_NORMS = ("layer", "batch")


class _ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of [N, C, H, W] at each position (token-local)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _stem_norm(norm: str, width: int) -> nn.Module:
    return nn.BatchNorm2d(width) if norm == "batch" else _ChannelLayerNorm(width)


def is_token_local(patch_embed: nn.Module) -> bool:
    """Whether every token of ``patch_embed`` sees only its own patch: a single conv with
    kernel = stride = patch size (the plain ViT), or a stem that declares ``token_local``
    (``HMLPPatchEmbed``). A convolutional stem (``model.stem=conv``) is not."""
    if getattr(patch_embed, "token_local", False):
        return True
    proj = getattr(patch_embed, "proj", None)
    return (
        isinstance(proj, nn.Conv2d)
        and tuple(proj.kernel_size) == tuple(proj.stride)
        and tuple(proj.kernel_size) == tuple(patch_embed.patch_size)
    )


# one embed_layer per stem norm (the same object on every build, so two builds compare equal)
HMLP_EMBEDS = {n: partial(HMLPPatchEmbed, norm=n) for n in STEM_NORMS}


def _vit(
    img_size: int, in_chans: int, pool: str, stage_indices=None, *, stem: str, **kw: Any
) -> Backbone:
    if stem not in STEMS:
        raise ValueError(f"model.stem must be one of {', '.join(STEMS)}, got {stem!r}")
    stem_norm = kw.pop("stem_norm", None)
    if stem_norm is not None and stem != "hmlp":
        raise ValueError(f"model.stem_norm applies to model.stem=hmlp only (model.stem={stem!r})")
    if stem == "conv":
        kw["embed_layer"] = ConvStemPatchEmbed
    elif stem == "hmlp":
        if (stem_norm or "layer") not in STEM_NORMS:
            raise ValueError(
                f"model.stem_norm must be one of {', '.join(STEM_NORMS)}, got {stem_norm!r}"
            )
        kw["embed_layer"] = HMLP_EMBEDS[stem_norm or "layer"]
    model = VisionTransformer(
        img_size=img_size,
        in_chans=in_chans,
        num_classes=0,
        global_pool="token" if pool == "token" else "avg",
        fc_norm=False,  # final norm on every token: patch tokens and the class token share it
        **kw,
    )
    if pool == "flat":
        # model.pool=flat: a linear map of all patch tokens in grid order to the width D (part of
        # the timm module, so stage hand-offs carry it). GAP and a class token that attends
        # uniformly at initialisation both start from a bag of patches: on SynthFER the ViT then
        # sits at one predicted class for 4 epochs, while this head learns where a feature is from
        # the first epoch (benchmarks/results/vit.md). It fixes img_size (the number of patches).
        model.flat_pool = nn.Linear(
            model.patch_embed.num_patches * model.embed_dim, model.embed_dim
        )
    return Backbone(model, "vit", pool=pool, stage_indices=stage_indices)


def _vit_entry(name: str) -> Callable[..., Backbone]:
    def build(*, img_size: int, in_chans: int, pool: str = "gap", **kw: Any) -> Backbone:
        return _vit(img_size, in_chans, pool, **{**group_defaults(name), **kw})

    return build


# patch_size, embed_dim, depth, num_heads, mlp_ratio, stem, drop_path_rate: conf/model/<name>.yaml
BACKBONES.register("vit_tiny_cpu")(_vit_entry("vit_tiny_cpu"))
BACKBONES.register("vit_hybrid_cpu")(_vit_entry("vit_hybrid_cpu"))
BACKBONES.register("vit_patch_cpu")(_vit_entry("vit_patch_cpu"))
BACKBONES.register("vit_small")(_vit_entry("vit_small"))
BACKBONES.register("vit_base")(_vit_entry("vit_base"))


# --- ResNets ----------------------------------------------------------------------------------
def _resnet_entry(
    name: str, block: type, layers: list[int], **structure: Any
) -> Callable[..., Backbone]:
    """``structure``: what the group YAML does not name (widths, stem); the YAML's keys win."""

    def build(
        *, img_size: int, in_chans: int, pool: str = "gap", stage_indices=None, **kw: Any
    ) -> Backbone:
        del img_size  # fully convolutional
        if pool != "gap":
            raise ValueError(f"model.pool must be gap for a ResNet, got {pool!r}")
        args = {**structure, **group_defaults(name), **kw}
        if "channels" in args:
            args["channels"] = tuple(args["channels"])
        model = ResNet(
            block=block,
            layers=list(args.pop("layers", layers)),
            in_chans=in_chans,
            num_classes=0,
            **args,
        )
        return Backbone(model, "resnet", pool=pool, stage_indices=stage_indices)

    return build


BACKBONES.register("resnet_tiny_cpu")(
    _resnet_entry(
        "resnet_tiny_cpu", BasicBlock, [1, 1, 1, 1], channels=(32, 64, 128, 256), stem_width=32
    )
)
BACKBONES.register("resnet18")(_resnet_entry("resnet18", BasicBlock, [2, 2, 2, 2]))
BACKBONES.register("resnet50")(_resnet_entry("resnet50", Bottleneck, [3, 4, 6, 3]))
