"""Partial-label learning with label disambiguation (001, Sec. III, Algorithm 1): method ``pll``.

Per training sample ``i`` (by dataset index) the method keeps a candidate set ``Y_i`` and a
confidence vector ``C_i`` (uniform over ``Y_i`` at start). A step:

1. features of the batch; class logits from the label-disambiguation decoder over the patch tokens
   (``decoder.enabled``; :mod:`fer_core.models.label_decoder`) or a linear head on the pooled feature;
2. ``confidence.update=revision``: ``C_i`` is revised first (Eq. 3-4, ``phi = sigmoid(logits)``,
   ``revision.threshold``), and the loss uses the revised confidence (Fig. 2: "the loss is computed
   between logits and the i-th confidence"). Algorithm 1 revises from the first batch
   (``revision.start_epoch=0``); a later start epoch (not in the paper) keeps a model trained from
   scratch from committing to its early, majority-class-biased guesses;
3. loss = Eq. 1 (``losses/pll.py``) + ``uniform.weight`` * Eq. 2 on the class query embeddings
   (``uniform.enabled``, ``uniform.tau``; with the decoder off: on the rows of the linear head;
   Eq. 2 minus its gradient-free constant ``1/tau``, so that ``train/loss`` stays readable);
4. ``confidence.update=rc``: after the loss, ``C_i`` of the batch becomes ``softmax(logits)`` masked
   to ``Y_i`` and renormalised (the RC / PRODEN baselines of Table I; PRODEN-style, from this step's
   logits, no second forward pass). ``none`` keeps ``C_i`` uniform (vanilla PLL, Table V).

Candidate sets (``labels.candidates``, ``labels.k``):

- ``votes``: the ``k`` largest non-zero emotion vote counts, ties included
  (:func:`fer_core.data.labels.vote_candidates`, INTERFACES.md). A sample without emotion votes
  gets its hard label as a singleton. **Datasets without votes fall back to ``topk_model``.**
- ``topk_model``: the top-``k`` predictions of a warm-up model, computed in ``on_train_start``
  over the training set. The method's class head is freshly initialised at that point (a previous
  stage hands over the encoder only), so the warm-up classifier is the nearest-class-mean
  classifier on the (e.g. MaskFeat pre-trained) backbone's pooled features: cosine similarity to the
  mean feature of each class's training samples (by hard label). The sample's own hard label is
  always kept in the set (it replaces the k-th prediction when missing). Samples without a hard
  label keep the plain top-``k``.

Metrics from ``on_epoch_end`` (fractions over the training set; the truth is SynthFER's generating
class, else the majority of the votes, else the hard label): ``pll/coverage`` (truth inside
``Y_i``), ``pll/set_size`` (mean ``|Y_i|``), ``pll/revised`` (samples whose ``C_i`` was revised to
one-hot by Eq. 4), ``pll/disamb_acc`` (``argmax C_i`` equals the truth; a tie between ``m``
classes counts ``1/m``) and ``pll/disamb_acc_pred`` (the model's last prediction on the sample
restricted to ``Y_i`` equals the truth; measures disambiguation when ``C_i`` is not updated).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.data.labels import majority_labels, vote_candidates
from fer_core.losses.pll import (
    CONFIDENCE_UPDATES,
    pll_loss,
    rc_confidence,
    revise_confidence,
    uniform_confidence,
)
from fer_core.losses.uniform import uniform_loss
from fer_core.methods.base import Method, StepContext, StepOutput, TrainContext, register_method
from fer_core.models.label_decoder import LabelDecoder

CANDIDATE_SOURCES = ("votes", "topk_model")
_STATE_KEYS = ("candidates", "confidence", "revised", "pred", "truth")
EPOCH_METRICS = (
    "pll/coverage",
    "pll/set_size",
    "pll/revised",
    "pll/disamb_acc",
    "pll/disamb_acc_pred",
)


@register_method("pll")
class PartialLabelLearning(Method):
    """001's PLL fine-tuning stage; knobs as in ``conf/method/pll.yaml`` (defaults mirror it)."""

    diagnostic_metrics = ("pll/revised",)  # identical rows across thresholds: nothing revised

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        *,
        labels_candidates: str = "votes",
        labels_k: int = 2,
        decoder_enabled: bool = True,
        decoder_layers: int = 2,
        decoder_heads: int = 4,
        decoder_dim: int | None = None,
        decoder_self_attn: bool = False,
        uniform_enabled: bool = True,
        uniform_tau: float = 0.001,
        uniform_weight: float = 1.0,
        revision_threshold: float = 0.2,
        revision_start_epoch: int = 0,
        confidence_update: str = "revision",
        **kwargs,
    ) -> None:
        super().__init__(backbone, num_classes, **kwargs)
        if labels_candidates not in CANDIDATE_SOURCES:
            raise ValueError(
                f"labels.candidates must be one of {', '.join(CANDIDATE_SOURCES)}, got {labels_candidates!r}"
            )
        if (
            not isinstance(labels_k, int)
            or isinstance(labels_k, bool)
            or not 1 <= labels_k <= num_classes
        ):
            raise ValueError(f"labels.k must be an integer in [1, {num_classes}], got {labels_k!r}")
        if confidence_update not in CONFIDENCE_UPDATES:
            raise ValueError(
                f"confidence.update must be one of {', '.join(CONFIDENCE_UPDATES)}, got {confidence_update!r}"
            )
        if not revision_threshold >= 0:
            raise ValueError(f"revision.threshold must be >= 0, got {revision_threshold!r}")
        if not isinstance(revision_start_epoch, int) or revision_start_epoch < 0:
            raise ValueError(
                f"revision.start_epoch must be an integer >= 0, got {revision_start_epoch!r}"
            )
        if not uniform_tau > 0:
            raise ValueError(f"uniform.tau must be > 0, got {uniform_tau!r}")
        if not uniform_weight >= 0:
            raise ValueError(f"uniform.weight must be >= 0, got {uniform_weight!r}")
        self.labels_candidates = labels_candidates
        self.labels_k = labels_k
        self.uniform_enabled = bool(uniform_enabled)
        self.uniform_tau = float(uniform_tau)
        self.uniform_weight = float(uniform_weight)
        self.revision_threshold = float(revision_threshold)
        self.revision_start_epoch = revision_start_epoch
        self.confidence_update = confidence_update
        width = backbone.num_features
        if decoder_enabled:
            self.decoder: LabelDecoder | None = LabelDecoder(
                width,
                num_classes,
                dim=decoder_dim,
                layers=decoder_layers,
                heads=decoder_heads,
                self_attn=decoder_self_attn,
            )
            self.head: nn.Linear | None = None
        else:
            self.decoder = None
            self.head = nn.Linear(width, num_classes)
        # Per-sample state (tensors, by dataset index); built in on_train_start.
        self.candidates: torch.Tensor | None = None  # bool [N, C]
        self.confidence: torch.Tensor | None = None  # float [N, C]
        self.revised: torch.Tensor | None = None  # bool [N]
        self.pred: torch.Tensor | None = None  # long [N], -1 = not seen yet
        self.truth: torch.Tensor | None = None  # long [N], -1 = unknown
        self.candidate_source = ""  # what on_train_start actually used

    @property
    def own_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        """``pll/loss`` every step; ``pll/revised_step`` and ``pll/uniform`` when their knobs are
        on; the per-epoch ``pll/*`` of :func:`pll_metrics`."""
        names = ["pll/loss"]
        if self.confidence_update == "revision":
            names.append("pll/revised_step")
        if self.uniform_enabled and self.uniform_weight > 0:
            names.append("pll/uniform")
        return (*names, *EPOCH_METRICS)

    def handoff_modules(self) -> dict[str, nn.Module]:
        """The class head is the label-disambiguation decoder, or the linear head without it."""
        return {"head": self.decoder if self.decoder is not None else self.head}

    # --- model --------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] -> logits [N, num_classes]."""
        if self.decoder is not None:
            return self.decoder(self.backbone.features(images).patch).logits
        return self.head(self.backbone.pooled(images))

    def class_embeddings(self) -> torch.Tensor:
        """[K, d]: the label query embeddings (decoder) or the linear head's rows (Eq. 2 input)."""
        return self.decoder.query_embed if self.decoder is not None else self.head.weight

    # --- candidate sets -----------------------------------------------------------------------
    def on_train_start(self, ctx: TrainContext) -> None:
        ts = ctx.train_set
        n, c = len(ts), self.num_classes
        labels = torch.as_tensor(ts.labels, dtype=torch.long).cpu()
        votes = getattr(ts, "votes", None)
        if self.labels_candidates == "votes" and votes is not None:
            cand = vote_candidates(votes.cpu(), self.labels_k, num_classes=c)
            self.candidate_source = "votes"
        else:
            cand = self._topk_model_candidates(ctx, labels)
            self.candidate_source = "topk_model"
        empty = ~cand.any(dim=1) & (labels >= 0)
        cand[empty, labels[empty].clamp_min(0)] = True  # no votes: the hard label alone
        true = getattr(ts, "true_labels", None)
        if true is not None:
            truth = torch.as_tensor(true, dtype=torch.long).cpu()
        elif votes is not None:
            truth = majority_labels(votes.cpu(), num_classes=c)
        else:
            truth = labels.clone()
        dev = ctx.device
        self.candidates = cand.to(dev)
        self.confidence = uniform_confidence(cand).to(dev)
        self.revised = torch.zeros(n, dtype=torch.bool, device=dev)
        self.pred = torch.full((n,), -1, dtype=torch.long, device=dev)
        self.truth = truth.to(dev)

    @torch.no_grad()
    def _topk_model_candidates(self, ctx: TrainContext, labels: torch.Tensor) -> torch.Tensor:
        """bool [N, C]: top-k of a nearest-class-mean classifier on pooled backbone features."""
        n, c, k = len(ctx.train_set), self.num_classes, self.labels_k
        was_training = self.training
        self.eval()
        feats = None
        for batch in ctx.iterate_train(256):
            f = F.normalize(self.backbone.pooled(batch["image"].to(ctx.device)).float(), dim=1)
            if feats is None:
                feats = torch.zeros(n, f.shape[1])
            feats[batch["index"].cpu()] = f.cpu()
        self.train(was_training)
        known = labels >= 0
        if not known.any():
            raise ValueError(
                "labels.candidates=topk_model needs hard labels to fit the warm-up classifier"
            )
        protos = torch.zeros(c, feats.shape[1]).index_add_(0, labels[known], feats[known])
        scores = feats @ F.normalize(protos, dim=1).T  # [N, C] cosine similarity
        top = scores.topk(k, dim=1).indices  # [N, k]
        miss = known & ~(top == labels[:, None]).any(dim=1)
        top[miss, k - 1] = labels[miss]  # keep the annotated label in the set
        cand = torch.zeros(n, c, dtype=torch.bool)
        cand.scatter_(1, top, True)
        return cand

    # --- the step -----------------------------------------------------------------------------
    def training_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        if self.confidence is None:
            raise RuntimeError(
                "pll: on_train_start must run before training_step (no candidate sets yet)"
            )
        idx = batch["index"].to(self.confidence.device)
        logits = self(batch["image"]).float()  # [N, C]
        conf = self.confidence[idx]
        cand = self.candidates[idx]
        logs: dict[str, torch.Tensor | float] = {}
        if self.confidence_update == "revision" and ctx.epoch >= self.revision_start_epoch:
            conf, changed = revise_confidence(
                torch.sigmoid(logits.detach()), conf, self.revision_threshold
            )
            self.confidence[idx] = conf
            self.revised[idx] |= changed
            logs["pll/revised_step"] = changed.float().mean()
        valid = cand.any(dim=1)
        loss = pll_loss(logits, conf, valid)
        logs["pll/loss"] = loss.detach()
        if self.uniform_enabled and self.uniform_weight > 0:
            uni = uniform_loss(self.class_embeddings(), self.uniform_tau, subtract_self=True)
            loss = loss + self.uniform_weight * uni
            logs["pll/uniform"] = uni.detach()
        if self.confidence_update == "rc":
            self.confidence[idx] = rc_confidence(logits, cand)
        masked = logits.detach().masked_fill(~cand, float("-inf"))
        self.pred[idx] = torch.where(valid, masked.argmax(dim=1), -1)
        return StepOutput(loss=loss, logs=logs, logits=logits.detach())

    # --- metrics ------------------------------------------------------------------------------
    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        if self.confidence is None:
            return {}
        return pll_metrics(self.candidates, self.confidence, self.revised, self.pred, self.truth)

    # --- state --------------------------------------------------------------------------------
    def method_state(self) -> dict[str, torch.Tensor]:
        if self.confidence is None:
            return {}
        return {key: getattr(self, key).detach().cpu().clone() for key in _STATE_KEYS}

    def load_method_state(self, state: dict[str, torch.Tensor]) -> None:
        if not state:
            return
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"pll state lacks {missing}; got keys {sorted(state)}")
        dev = (
            self.confidence.device
            if self.confidence is not None
            else next(self.parameters()).device
        )
        n = state["confidence"].shape[0]
        if self.candidates is not None and self.candidates.shape[0] != n:
            raise ValueError(
                f"pll state holds {n} samples but the training set has {self.candidates.shape[0]}"
            )
        for key in _STATE_KEYS:
            setattr(self, key, state[key].to(dev).clone())


def pll_metrics(
    candidates: torch.Tensor,
    confidence: torch.Tensor,
    revised: torch.Tensor,
    pred: torch.Tensor,
    truth: torch.Tensor,
) -> dict[str, float]:
    """The ``pll/*`` metrics (module docstring) from the per-sample state; all fractions."""
    n = candidates.shape[0]
    known = truth >= 0
    t = truth.clamp_min(0)
    in_set = candidates.gather(1, t[:, None]).squeeze(1)
    top = confidence == confidence.max(dim=1, keepdim=True).values  # ties -> 1/m each
    hit = top.gather(1, t[:, None]).squeeze(1).float() / top.sum(dim=1).clamp_min(1)
    seen = known & (pred >= 0)
    denom = max(1, int(known.sum()))
    return {
        "pll/coverage": float(in_set[known].float().sum()) / denom,
        "pll/set_size": float(candidates.sum(dim=1).float().mean()) if n else 0.0,
        "pll/revised": float(revised.float().mean()) if n else 0.0,
        "pll/disamb_acc": float(hit[known].sum()) / denom,
        "pll/disamb_acc_pred": float((pred[seen] == truth[seen]).float().sum())
        / max(1, int(seen.sum())),
    }
