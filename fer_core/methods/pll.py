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
3. loss = Eq. 1 (``losses/pll.py``) + ``uniform.weight`` * the uniform term on the class query
   embeddings (with the decoder off: on the rows of the linear head), ``uniform.enabled``:
   ``uniform.mode=precompute`` (Sec. III-C.1, the default): Eq. 2's optimal positions are computed
   before training (:mod:`fer_core.losses.uniform`), the queries start on them and the term is
   their pull back, ``1 - cos``; ``regularize``: Eq. 2 itself every step (``uniform.tau``;
   ``uniform.exclude_self`` drops the ``j = i`` term, without which Eq. 2 has no gradient at
   ``tau = 0.001``);
4. ``confidence.update=rc``: after the loss, ``C_i`` of the batch becomes ``softmax(logits)`` masked
   to ``Y_i`` and renormalised (the RC / PRODEN baselines of Table I; PRODEN-style, from this step's
   logits, no second forward pass). ``none`` keeps ``C_i`` uniform (vanilla PLL, Table V).

Candidate sets (``labels.candidates``, ``labels.k``, Sec. III-A; :mod:`fer_core.methods._pll_sets`):

- ``votes``: the ``k`` largest emotion vote counts of at least 2 votes (single stray votes are
  outliers, as in FERPlus's reference code), ties included
  (:func:`fer_core.data.labels.vote_candidates`, INTERFACES.md). A sample without such votes
  gets its hard label as a singleton. **Datasets without votes fall back to ``topk_model``.**
- ``topk_model``: the top-``k`` predictions of a warm-up model, computed in ``on_train_start``
  over the training set: the nearest-class-mean classifier on the (e.g. MaskFeat pre-trained)
  backbone's pooled features (the class head is new at that point). The sample's own hard label
  is always kept in the set (it replaces the k-th prediction when missing).

Which samples get a set (``labels.ambiguous``): 001 gives sets only to the samples that the method
of its ref. [51] finds ambiguous; the others keep their hard label as a singleton.

- ``all``: every sample (this project's earlier behaviour).
- ``adversarial`` ([51], Zheng et al., AAAI 2023): the warm-up model above is attacked with FGSM
  (``labels.attack_steps=1``) or PGD within an L-inf ball of ``labels.attack_eps`` pixels; a
  sample is ambiguous when its prediction flips.
- ``vote_entropy``: the annotators' normalised vote entropy exceeds ``labels.entropy_threshold``.

Metrics from ``on_epoch_end`` (fractions over the training set; the truth is SynthFER's generating
class, else the majority of the votes, else the hard label): ``pll/coverage`` (truth inside
``Y_i``), ``pll/set_size`` (mean ``|Y_i|``), ``pll/revised`` (samples whose ``C_i`` was revised to
one-hot by Eq. 4), ``pll/ambiguous`` (samples given a set by ``labels.ambiguous``),
``pll/ambiguous_coverage`` (truth inside ``Y_i`` among those), ``pll/disamb_acc`` (``argmax C_i``
equals the truth; a tie between ``m`` classes counts ``1/m``) and ``pll/disamb_acc_pred`` (the
model's last prediction on the sample restricted to ``Y_i`` equals the truth; measures
disambiguation when ``C_i`` is not updated).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.data.labels import majority_labels, vote_candidates, vote_entropy
from fer_core.losses.pll import (
    CONFIDENCE_UPDATES,
    pll_loss,
    rc_confidence,
    revise_confidence,
    uniform_confidence,
)
from fer_core.losses.uniform import (
    UNIFORM_MODES,
    align_rotation,
    cached_positions,
    pull_loss,
    uniform_loss,
)
from fer_core.methods._pll_sets import adversarial_flips, fit_ncm, topk_candidates
from fer_core.methods.base import Method, StepContext, StepOutput, TrainContext, register_method
from fer_core.models.label_decoder import LabelDecoder

CANDIDATE_SOURCES = ("votes", "topk_model")
AMBIGUITY_SOURCES = ("all", "adversarial", "vote_entropy")
_STATE_KEYS = ("candidates", "confidence", "revised", "pred", "truth")
_OPTIONAL_STATE_KEYS = ("ambiguous",)  # absent from states saved before labels.ambiguous
EPOCH_METRICS = (
    "pll/ambiguous",
    "pll/ambiguous_coverage",
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
        labels_ambiguous: str = "all",
        labels_attack_eps: float = 0.03,
        labels_attack_steps: int = 1,
        labels_entropy_threshold: float = 0.2,
        decoder_enabled: bool = True,
        decoder_layers: int = 2,
        decoder_heads: int = 4,
        decoder_dim: int | None = None,
        decoder_self_attn: bool = False,
        uniform_enabled: bool = True,
        uniform_tau: float = 0.001,
        uniform_weight: float = 1.0,
        uniform_mode: str = "precompute",
        uniform_exclude_self: bool = False,
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
        if labels_ambiguous not in AMBIGUITY_SOURCES:
            raise ValueError(
                f"labels.ambiguous must be one of {', '.join(AMBIGUITY_SOURCES)}, "
                f"got {labels_ambiguous!r}"
            )
        if not labels_attack_eps > 0:
            raise ValueError(
                f"labels.attack_eps must be > 0 (pixels, [0, 1] scale), got {labels_attack_eps!r}"
            )
        if (
            not isinstance(labels_attack_steps, int)
            or isinstance(labels_attack_steps, bool)
            or labels_attack_steps < 1
        ):
            raise ValueError(
                f"labels.attack_steps must be an integer >= 1 (1 = FGSM), got {labels_attack_steps!r}"
            )
        if not 0 <= labels_entropy_threshold < 1:
            raise ValueError(
                f"labels.entropy_threshold must be in [0, 1) (normalised entropy), "
                f"got {labels_entropy_threshold!r}"
            )
        if uniform_mode not in UNIFORM_MODES:
            raise ValueError(
                f"uniform.mode must be one of {', '.join(UNIFORM_MODES)}, got {uniform_mode!r}"
            )
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
        self.labels_ambiguous = labels_ambiguous
        self.labels_attack_eps = float(labels_attack_eps)
        self.labels_attack_steps = labels_attack_steps
        self.labels_entropy_threshold = float(labels_entropy_threshold)
        self.uniform_mode = uniform_mode
        self.uniform_exclude_self = bool(uniform_exclude_self)
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
        self.ambiguous: torch.Tensor | None = None  # bool [N]: got a top-k set (Sec. III-A)
        self.candidate_source = ""  # what on_train_start actually used
        # uniform.mode=precompute: Eq. 2's optimal positions, the queries' fixed targets. A
        # buffer, so that a resumed run keeps the targets its queries were pulled towards.
        k, d = self.class_embeddings().shape
        self.register_buffer("uniform_targets", torch.zeros(k, d))
        self._uniform_seed = torch.initial_seed()  # the trial's seed (set before the build)
        self._head_given = False

    @property
    def own_metrics(self) -> tuple[str, ...]:  # type: ignore[override]
        """``pll/loss`` every step; ``pll/revised_step`` and ``pll/uniform`` when their knobs are
        on; the per-epoch ``pll/*`` of :func:`pll_metrics`."""
        names = ["pll/loss"]
        if self.confidence_update == "revision":
            names.append("pll/revised_step")
        if self._uniform_active:
            names.append("pll/uniform")
        return (*names, *EPOCH_METRICS)

    @property
    def _uniform_active(self) -> bool:
        return self.uniform_enabled and self.uniform_weight > 0

    def handoff_modules(self) -> dict[str, nn.Module]:
        """The class head is the label-disambiguation decoder, or the linear head without it."""
        return {"head": self.decoder if self.decoder is not None else self.head}

    def load_handoff(self, parts: dict[str, dict[str, torch.Tensor]]) -> None:
        super().load_handoff(parts)
        self._head_given = self._head_given or "head" in parts

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
        votes = None if votes is None else votes.cpu()
        use_votes = self.labels_candidates == "votes" and votes is not None
        protos = None
        if not use_votes or self.labels_ambiguous == "adversarial":
            feats, protos = fit_ncm(self.backbone, ctx.iterate_train(256), n, labels, c)
        if use_votes:
            cand = vote_candidates(votes, self.labels_k, num_classes=c)
            self.candidate_source = "votes"
        else:
            cand = topk_candidates(feats @ protos.T, labels, self.labels_k)
            self.candidate_source = "topk_model"
        ambiguous = self._ambiguous(ctx, votes, protos, n)
        known = labels >= 0
        single = ~ambiguous & known
        cand[single] = F.one_hot(labels[single], c).bool()  # clear samples keep their label
        empty = ~cand.any(dim=1) & known
        cand[empty, labels[empty]] = True  # no (non-stray) votes: the hard label alone
        true = getattr(ts, "true_labels", None)
        if true is not None:
            truth = torch.as_tensor(true, dtype=torch.long).cpu()
        elif votes is not None:
            truth = majority_labels(votes, num_classes=c)
        else:
            truth = labels.clone()
        dev = ctx.device
        self.candidates = cand.to(dev)
        self.confidence = uniform_confidence(cand).to(dev)
        self.revised = torch.zeros(n, dtype=torch.bool, device=dev)
        self.pred = torch.full((n,), -1, dtype=torch.long, device=dev)
        self.truth = truth.to(dev)
        self.ambiguous = ambiguous.to(dev)
        if self.uniform_enabled and self.uniform_mode == "precompute":
            self._place_queries()

    def _ambiguous(
        self, ctx: TrainContext, votes: torch.Tensor | None, protos: torch.Tensor | None, n: int
    ) -> torch.Tensor:
        """bool [N]: the samples that get a candidate set (``labels.ambiguous``, Sec. III-A)."""
        if self.labels_ambiguous == "adversarial":
            return adversarial_flips(
                self.backbone,
                protos,
                ctx.iterate_train(256),
                n,
                self.labels_attack_eps,
                self.labels_attack_steps,
            )
        if self.labels_ambiguous == "vote_entropy":
            if votes is None:
                name = getattr(ctx.train_set, "name", "") or "this dataset"
                raise ValueError(
                    f"labels.ambiguous=vote_entropy needs annotator votes, and {name} has none; "
                    "use labels.ambiguous=adversarial or all"
                )
            return vote_entropy(votes, self.num_classes) > self.labels_entropy_threshold
        return torch.ones(n, dtype=torch.bool)

    @torch.no_grad()
    def _place_queries(self) -> None:
        """``uniform.mode=precompute``: the fixed targets of the class queries.

        Eq. 2's optimal positions (float64, cached by K, d, tau, exclude_self and the trial's
        seed; :func:`fer_core.losses.uniform.cached_positions`), rotated to be nearest to the
        current queries (Eq. 2 is rotation invariant). The queries start on them (their norms
        kept, so the decoder sees its usual input scale) unless an earlier stage handed over the
        head, and ``uniform.weight`` * (1 - cos) pulls them back during training: the paper fixes
        the positions "before training" but keeps the queries learnable ("the transformer
        decoder updates Q"), so they are initialised on the targets and held near them rather
        than frozen (freezing would also need the optimiser to skip them).
        """
        emb = self.class_embeddings()
        k, d = emb.shape
        pos = cached_positions(
            k, d, self.uniform_tau, exclude_self=self.uniform_exclude_self, seed=self._uniform_seed
        )
        targets = align_rotation(pos, emb.detach().double().cpu()).to(emb)
        self.uniform_targets.copy_(targets)
        if not self._head_given:
            emb.copy_(targets * emb.norm(dim=1, keepdim=True).clamp_min(1e-12))

    def uniform_term(self) -> torch.Tensor:
        """The uniform part of the loss before ``uniform.weight``: ``precompute``: the pull of the
        class embeddings to their targets; ``regularize``: Eq. 2 on them (``exclude_self``)."""
        emb = self.class_embeddings()
        if self.uniform_mode == "precompute":
            return pull_loss(emb, self.uniform_targets)
        return uniform_loss(emb, self.uniform_tau, exclude_self=self.uniform_exclude_self)

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
        if self._uniform_active:
            uni = self.uniform_term()
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
        out = pll_metrics(self.candidates, self.confidence, self.revised, self.pred, self.truth)
        return {**out, **ambiguity_metrics(self.ambiguous, self.candidates, self.truth)}

    # --- state --------------------------------------------------------------------------------
    def method_state(self) -> dict[str, torch.Tensor]:
        if self.confidence is None:
            return {}
        keys = (*_STATE_KEYS, *_OPTIONAL_STATE_KEYS)
        return {
            k: getattr(self, k).detach().cpu().clone() for k in keys if getattr(self, k) is not None
        }

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
        amb = state.get("ambiguous")
        self.ambiguous = (
            amb.to(dev).clone() if amb is not None else torch.ones(n, dtype=torch.bool, device=dev)
        )


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


def ambiguity_metrics(
    ambiguous: torch.Tensor | None, candidates: torch.Tensor, truth: torch.Tensor
) -> dict[str, float]:
    """``pll/ambiguous``: the fraction of samples that got a candidate set (``labels.ambiguous``);
    ``pll/ambiguous_coverage``: among them (with a known truth), the truth lies in ``Y_i``."""
    n = candidates.shape[0]
    if ambiguous is None:
        ambiguous = torch.ones(n, dtype=torch.bool, device=candidates.device)
    sel = ambiguous & (truth >= 0)
    in_set = candidates.gather(1, truth.clamp_min(0)[:, None]).squeeze(1)
    return {
        "pll/ambiguous": float(ambiguous.float().mean()) if n else 0.0,
        "pll/ambiguous_coverage": float(in_set[sel].float().sum()) / max(1, int(sel.sum())),
    }
