"""Cross-layer contrastive learning of latent semantics (003, Sec. III, Fig. 2-4, Eq. 1-12):
``crosslayer``.

Loss (Eq. 10): ``CE(F) + L_fm + L_bs`` on one view, where the encoder's L = 4 stage maps
``f_j`` (``Backbone.features(x, stages=True)``, widths from ``Backbone.stage_info()``) feed

- **CLFM** (``clfm.*``, Eq. 1-6; ``losses/clfm.py``): ``g_{i,j} = Flatten(HashCoding(AP(Conv(f_j))))``
  [N, C_j, fd_fm]; the deep centroids of block L's channel codes (k-means, K_FM = ``clfm.k``) and
  each shallow block's per-sample group means are aligned by Eq. 6, weighted by ``alpha``;
- **CLBS** (``clbs.*``, Eq. 7; ``losses/clbs.py``): ``h_{i,j} = ReLU(FC(GAP(Conv(f_j))))`` [N, fd_bs];
  k-means over the batch's deep codes (K_BS = ``clbs.k``), weighted by ``beta``;
- **MSR** (``msr.*``, Eq. 8-9; ``models/msr.py``): the classifier reads the attention-fused
  multi-scale feature F [N, msr.dim]; without MSR it reads the last block's pooled feature (the
  baseline ResNet).

``alpha`` and ``beta`` hold one weight per shallow block (L - 1 = 3; Table V, default
``[0, 0.1, 0]``: blocks 2 and 4 are aligned) or one number for all of them; a block whose weight
is 0 gets no coder (nothing is computed for it). ``centers``: ``kmeans`` (Eq. 2, the paper's) or
``class_center`` (Eq. 12, Table VI: the per-mini-batch class means of the deep codes; for CLFM the
mean over a class's samples and their channels). ``clfm.detach_targets``: the paper lets the
gradient reach the deep centroids (false); the authors' public code does not (true). It applies to
both modules' centroids. k-means (``kmeans.iters`` Lloyd iterations, ``losses/kmeans.py``) runs on
the batch's device, seeded by the step's generator.

Partial supervision (Table II): under ``trainer.protocol=semi`` with ``unlabelled: true`` the
method asks for the unlabelled stream; its first view (``trainer.semi.unlabelled_views[0]``) joins
the labelled images in one forward pass and enters only the cross-layer losses (CE sees the
labelled samples alone; ``class_center`` uses labelled samples only).

Where the paper leaves a choice open (said here so that a reader can change it):

- ``HashCoding`` (the paper's [55]: coordinates of each map's maximum response) is not
  differentiable; here AP pools each channel to an s x s grid (s = ceil(sqrt(fd_fm)), 4 x 4 for
  fd_fm = 16) and a learned linear code per block maps it to fd_fm values (``FMCoder``).
- ``Conv`` in Eq. 1 and in CLBS's branch is a 3x3 convolution keeping the block's width, with
  BatchNorm and ReLU.
- Eq. 10 sums CE and L_fm over the batch and adds L_bs once; here CE and L_fm are batch means and
  L_bs is added once, so alpha and beta keep the scale of Table V's values next to a mean CE.
- The MSR attention weights (Fig. 11's story) are averaged over the epoch's training samples and
  reported per block as ``msr/mu1`` .. ``msr/mu<L>`` once per epoch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.losses.clbs import check_batch, clbs_loss
from fer_core.losses.clfm import class_centroids, clfm_loss, deep_centroids
from fer_core.losses.kmeans import check_iters, check_k
from fer_core.methods.base import Method, MethodNeeds, StepContext, StepOutput, register_method
from fer_core.models.heads import ClassifierHead
from fer_core.models.msr import MultiScaleRepresentation

CENTERS = ("kmeans", "class_center")


def layer_weights(name: str, value: object, n: int) -> list[float]:
    """``alpha`` / ``beta``: one number (broadcast) or a list of n = L - 1 numbers >= 0."""
    vals = list(value) if isinstance(value, (list, tuple)) else [value] * n
    if len(vals) != n:
        raise ValueError(
            f"{name} must be one number or a list of L-1 = {n} weights (one per shallow block, "
            f"Table V), got {list(vals)!r}"
        )
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or math.isnan(v):
            raise ValueError(f"{name}: each weight must be a number >= 0, got {list(vals)!r}")
    return [float(v) for v in vals]


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)
    )


class FMCoder(nn.Module):
    """Eq. 1: f_j [N, C, H, W] -> g_j [N, C, fd_fm] (Conv, AP to s x s, per-channel linear code)."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.side = math.ceil(math.sqrt(dim))
        self.conv = _conv_block(channels, channels)
        self.code = nn.Linear(self.side * self.side, dim)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        a = F.adaptive_avg_pool2d(self.conv(f), self.side)  # [N, C, s, s]
        return self.code(a.flatten(2))


class BSCoder(nn.Module):
    """CLBS's branch (Fig. 2): f_j [N, C, H, W] -> h_j [N, fd_bs] = ReLU(FC(GAP(Conv(f_j))))."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.conv = _conv_block(channels, channels)
        self.fc = nn.Linear(channels, dim)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(self.conv(f).mean((2, 3))))


@register_method("crosslayer")
class CrossLayer(Method):
    """CE + CLFM + CLBS with an optional MSR head; knobs as in ``conf/method/crosslayer.yaml``."""

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        alpha: float | list[float] = [0.0, 0.1, 0.0],  # noqa: B006 (read, never mutated)
        beta: float | list[float] = [0.0, 0.1, 0.0],  # noqa: B006
        centers: str = "kmeans",
        clfm_enabled: bool = True,
        clfm_k: int = 4,
        clfm_dim: int = 16,
        clfm_detach_targets: bool = False,
        clbs_enabled: bool = True,
        clbs_k: int = 7,
        clbs_dim: int = 128,
        msr_enabled: bool = True,
        msr_dim: int = 128,
        kmeans_iters: int = 10,
        unlabelled: bool = False,
        views: list[str] | tuple[str, ...] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(backbone, num_classes, views=views, **kwargs)
        if not hasattr(backbone, "stage_info"):
            raise ValueError("crosslayer needs a fer_core Backbone with stage maps")
        info = backbone.stage_info()
        self.num_blocks = len(info)
        if self.num_blocks < 2:
            raise ValueError(f"crosslayer needs at least 2 stages, the backbone has {len(info)}")
        n = self.num_blocks - 1
        self.alpha = layer_weights("alpha", alpha, n)
        self.beta = layer_weights("beta", beta, n)
        if centers not in CENTERS:
            raise ValueError(f"centers must be one of {', '.join(CENTERS)}, got {centers!r}")
        for name, v in (("clfm.enabled", clfm_enabled), ("clbs.enabled", clbs_enabled),
                        ("msr.enabled", msr_enabled), ("clfm.detach_targets", clfm_detach_targets),
                        ("unlabelled", unlabelled)):  # fmt: skip
            if not isinstance(v, bool):
                raise ValueError(f"{name} must be true or false, got {v!r}")
        self.clfm_k, self.clbs_k = check_k("clfm.k", clfm_k), check_k("clbs.k", clbs_k)
        for name, v in (("clfm.dim", clfm_dim), ("clbs.dim", clbs_dim), ("msr.dim", msr_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        self.iters = check_iters(kmeans_iters)
        self.centers, self.detach = centers, clfm_detach_targets
        self.use_unlabelled = unlabelled
        if clbs_enabled and centers == "kmeans":
            check_batch(clbs_k, self.info.batch_size)  # before any training
        chans = [int(d["num_chs"]) for d in info]
        last = str(self.num_blocks - 1)
        # coders only for the blocks that carry a weight, plus the deep block L
        self.clfm_on = clfm_enabled and any(self.alpha)
        self.clbs_on = clbs_enabled and any(self.beta)
        self.fm = nn.ModuleDict()
        if self.clfm_on:
            self.fm = nn.ModuleDict({str(j): FMCoder(chans[j], clfm_dim) for j in range(n)
                                     if self.alpha[j]})  # fmt: skip
            self.fm[last] = FMCoder(chans[-1], clfm_dim)
        self.bs = nn.ModuleDict()
        if self.clbs_on:
            self.bs = nn.ModuleDict({str(j): BSCoder(chans[j], clbs_dim) for j in range(n)
                                     if self.beta[j]})  # fmt: skip
            self.bs[last] = BSCoder(chans[-1], clbs_dim)
        self.msr = None
        if msr_enabled:
            where = f"model {type(backbone.model).__name__} ({getattr(backbone, 'kind', '?')})"
            self.msr = MultiScaleRepresentation(
                chans, [int(d["reduction"]) for d in info], msr_dim, where
            )
        self.head = ClassifierHead(msr_dim if msr_enabled else backbone.num_features, num_classes)
        self.register_buffer("_mu_sum", torch.zeros(self.num_blocks), persistent=False)
        self._mu_n = 0

    # --- declarations -----------------------------------------------------------------------
    @property
    def needs(self) -> MethodNeeds:  # type: ignore[override]
        return MethodNeeds(views=1, unlabelled=self.use_unlabelled)

    @property
    def own_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        """``train/ce``; ``train/clfm`` (Eq. 6's value) and ``train/clbs`` (Eq. 7's) when on;
        with MSR ``msr/mu<j>``: block j's attention weight (Eq. 8), the epoch's mean."""
        out = ["train/ce"]
        out += ["train/clfm"] if self.clfm_on else []
        out += ["train/clbs"] if self.clbs_on else []
        if self.msr is not None:
            out += [f"msr/mu{j + 1}" for j in range(self.num_blocks)]
        return tuple(out)

    # --- forward ------------------------------------------------------------------------------
    def _logits(self, feats) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.msr is None:
            return self.head(feats.pooled), None
        fused, mu = self.msr(feats.stages)
        return self.head(fused), mu

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> logits [N, num_classes]."""
        feats = self.backbone.features(images, stages=self.msr is not None)
        return self._logits(feats)[0]

    # --- the step -----------------------------------------------------------------------------
    def _centroids(self, deep: torch.Tensor, labels: torch.Tensor, k: int, g) -> torch.Tensor:
        """Eq. 2 (k-means over deep [M, d] points) or Eq. 12 (class means of deep [N, ..., d])."""
        if self.centers == "class_center":
            return class_centroids(deep, labels, detach=self.detach)
        pts = deep.reshape(-1, deep.shape[-1])
        return deep_centroids(pts, k, iters=self.iters, generator=g, detach=self.detach)

    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        x, y = batch["image"], batch["label"]
        n = x.shape[0]
        if self.use_unlabelled and "unlabelled" in batch:
            xu = batch["unlabelled"]["views"][0]
            x = torch.cat([x, xu])
            y_all = torch.cat([y, y.new_full((xu.shape[0],), -1)])
        else:
            y_all = y
        feats = self.backbone.features(x, stages=True)
        logits, mu = self._logits(feats)
        logits = logits[:n]
        ce = F.cross_entropy(logits.float(), y, ignore_index=-1)
        loss = ce
        logs: dict[str, torch.Tensor | float] = {"ce": ce.detach()}
        g = ctx.generator if ctx is not None else None
        maps = feats.stages
        last = str(self.num_blocks - 1)
        if self.clfm_on:
            codes = {j: self.fm[j](maps[int(j)]).float() for j in self.fm}  # [N, C_j, fd_fm]
            phi = self._centroids(codes[last], y_all, self.clfm_k, g)
            shallow = [codes[str(j)] for j, a in enumerate(self.alpha) if a]
            fm, _ = clfm_loss(shallow, phi, [a for a in self.alpha if a])
            loss = loss + fm
            logs["clfm"] = fm.detach()
        if self.clbs_on:
            if self.centers == "kmeans" and x.shape[0] < self.clbs_k:
                raise ValueError(
                    f"clbs.k={self.clbs_k} clusters need at least {self.clbs_k} samples per "
                    f"batch, got {x.shape[0]}: lower clbs.k or raise trainer.batch_size (and the "
                    "training set's size)"
                )
            codes = {j: self.bs[j](maps[int(j)]).float() for j in self.bs}  # [N, fd_bs]
            psi = self._centroids(codes[last], y_all, self.clbs_k, g)
            shallow = [codes[str(j)] for j, b in enumerate(self.beta) if b]
            bs, _ = clbs_loss(shallow, psi, [b for b in self.beta if b])
            loss = loss + bs
            logs["clbs"] = bs.detach()
        if mu is not None:
            self._mu_sum += mu.detach().float().sum(0)
            self._mu_n += mu.shape[0]
        return StepOutput(loss=loss, logs=logs, logits=logits.detach())

    def on_epoch_start(self, epoch: int) -> None:
        self._mu_sum.zero_()
        self._mu_n = 0

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """The MSR attention weight of each block, averaged over the epoch's training samples."""
        if self.msr is None:
            return {}
        mean = self._mu_sum / max(1, self._mu_n)
        return {f"msr/mu{j + 1}": float(mean[j]) for j in range(self.num_blocks)}
