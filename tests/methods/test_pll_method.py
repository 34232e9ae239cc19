"""Method ``pll`` (001): candidate sets, confidence state, revision, metrics, knobs and spaces."""

from __future__ import annotations

import inspect
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from fer_core.data.base import FERImageSet
from fer_core.data.labels import vote_candidates, vote_entropy
from fer_core.losses.pll import uniform_confidence
from fer_core.losses.uniform import optimal_positions
from fer_core.methods import StepContext, TrainContext, create_method, list_methods
from fer_core.methods._pll_sets import adversarial_flips
from fer_core.methods.pll import PartialLabelLearning

REPO = Path(__file__).resolve().parents[2]
N, C = 24, 8


class TinyBackbone(nn.Module):
    """Stand-in with the backbone API: features(x).patch [N, L, D], .pooled [N, D]."""

    kind = "vit"

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.num_features = dim
        self.proj = nn.Conv2d(3, dim, 4, 4)

    def features(self, x, stages=False):
        patch = self.proj(x).flatten(2).transpose(1, 2)
        return SimpleNamespace(patch=patch, cls=None, pooled=patch.mean(1), stages=None)

    def pooled(self, x):
        return self.features(x).pooled


def _train_set(votes: bool = True) -> FERImageSet:
    g = torch.Generator().manual_seed(0)
    true = torch.arange(N) % C
    v = torch.zeros(N, 10)
    v[torch.arange(N), true] = 6.0
    v[torch.arange(N), (true + 1) % C] = 3.0  # a confusion partner -> 2-candidate sets
    v[::4, 8] = 1.0  # `unknown` votes never count
    rows = torch.arange(1, N, 6)
    v[rows, true[rows]] = 2.0  # majority goes to the partner: truth still in the set
    images = torch.randint(0, 256, (N, 3, 16, 16), generator=g, dtype=torch.uint8)
    images[:, 0] = (true[:, None, None] * 30).to(torch.uint8)  # a class cue for the model
    labels = v[:, :C].argmax(dim=1)
    return FERImageSet(
        images=images, labels=labels, num_classes=C, votes=v if votes else None, true_labels=true
    )


def _ctx(ts: FERImageSet) -> TrainContext:
    def iterate(bs):
        for s in range(0, len(ts), bs):
            idx = torch.arange(s, min(s + bs, len(ts)))
            yield {"image": ts.images[idx].float() / 255, "label": ts.labels[idx], "index": idx}

    return TrainContext(
        train_set=ts, num_classes=C, device=torch.device("cpu"), iterate_train=iterate
    )


def _batch(ts, idx):
    return {"image": ts.images[idx].float() / 255, "label": ts.labels[idx], "index": idx}


def _step_ctx(step=0):
    return StepContext(
        epoch=0,
        step=step,
        global_step=step,
        steps_per_epoch=3,
        num_epochs=1,
        device=torch.device("cpu"),
    )


def _method(ts=None, **knobs) -> PartialLabelLearning:
    torch.manual_seed(0)
    m = create_method("pll", TinyBackbone(), C, **knobs)
    m.on_train_start(_ctx(ts if ts is not None else _train_set()))
    return m


def test_registered():
    assert "pll" in list_methods()


def test_search_space_paths_are_knobs():
    space = yaml.safe_load((REPO / "search_spaces/pll.yaml").read_text())
    assert set(space) >= {"threshold", "k", "tau", "components"}
    sig = inspect.signature(PartialLabelLearning.__init__).parameters
    for entry in space.values():
        for path, dist in entry.items():
            assert path.startswith("method.")
            assert path[len("method.") :].replace(".", "_") in sig, path
            for cond in dist.get("when", {}):
                assert cond[len("method.") :].replace(".", "_") in sig, cond


def test_vote_candidates_and_uniform_confidence():
    ts = _train_set()
    m = _method(ts)
    assert m.candidate_source == "votes"
    assert torch.equal(m.candidates, vote_candidates(ts.votes, 2, num_classes=C))
    assert torch.allclose(m.confidence, uniform_confidence(m.candidates))
    metrics = m.on_epoch_end(0)
    assert metrics["pll/coverage"] == 1.0 and metrics["pll/set_size"] == 2.0
    assert metrics["pll/revised"] == 0.0
    # uniform over 2 with the truth inside: ties count 1/2
    assert metrics["pll/disamb_acc"] == pytest.approx(0.5)
    assert all(0.0 <= v <= 1.0 or k == "pll/set_size" for k, v in metrics.items())


def test_topk_model_candidates_keep_the_label():
    ts = _train_set()
    for k in (2, 3):
        m = _method(ts, labels_candidates="topk_model", labels_k=k)
        assert m.candidate_source == "topk_model"
        assert (m.candidates.sum(dim=1) == k).all()
        assert m.candidates[torch.arange(N), ts.labels].all()


def test_no_votes_falls_back_to_topk_model():
    m = _method(_train_set(votes=False))
    assert m.candidate_source == "topk_model"
    assert (m.candidates.sum(dim=1) == 2).all()


def test_training_steps_lower_the_loss_and_revise():
    ts = _train_set()
    m = _method(ts, revision_threshold=0.0, decoder_layers=1, decoder_heads=2)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    idx = torch.arange(N)
    losses = []
    for step in range(12):
        out = m.training_step(_batch(ts, idx), _step_ctx(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.logs["pll/loss"].item())
        assert out.logits.shape == (N, C)
    assert losses[-1] < losses[0]
    metrics = m.on_epoch_end(0)
    assert metrics["pll/revised"] > 0.0
    rev = m.revised
    assert torch.allclose(m.confidence[rev].max(dim=1).values, torch.ones(int(rev.sum())))
    # revised confidences stay inside the candidate set
    assert (m.confidence[~m.candidates] == 0).all()


def test_revision_waits_for_its_start_epoch():
    ts = _train_set()
    m = _method(ts, revision_threshold=0.0, revision_start_epoch=1)
    m.training_step(_batch(ts, torch.arange(N)), _step_ctx())  # epoch 0
    assert m.on_epoch_end(0)["pll/revised"] == 0.0
    ctx = StepContext(
        epoch=1, step=0, global_step=3, steps_per_epoch=3, num_epochs=2, device=torch.device("cpu")
    )
    m.training_step(_batch(ts, torch.arange(N)), ctx)
    assert m.on_epoch_end(1)["pll/revised"] > 0.0


def test_threshold_above_one_never_revises():
    ts = _train_set()
    m = _method(ts, revision_threshold=1.0)
    m.training_step(_batch(ts, torch.arange(N)), _step_ctx())
    assert m.on_epoch_end(0)["pll/revised"] == 0.0
    assert torch.allclose(m.confidence, uniform_confidence(m.candidates))


def test_confidence_update_none_and_rc():
    ts = _train_set()
    idx = torch.arange(N)
    m = _method(ts, confidence_update="none", decoder_enabled=False, uniform_enabled=False)
    assert m.decoder is None and isinstance(m.head, nn.Linear)
    out = m.training_step(_batch(ts, idx), _step_ctx())
    assert "pll/uniform" not in out.logs
    assert torch.allclose(m.confidence, uniform_confidence(m.candidates))
    m = _method(ts, confidence_update="rc")
    out = m.training_step(_batch(ts, idx), _step_ctx())
    probs = torch.softmax(out.logits, dim=1) * m.candidates
    torch.testing.assert_close(m.confidence, probs / probs.sum(dim=1, keepdim=True))


def test_uniform_loss_is_added_with_its_weight():
    ts = _train_set()
    idx = torch.arange(N)
    m = _method(ts, uniform_tau=0.5, uniform_weight=0.3, revision_threshold=1.0)
    out = m.training_step(_batch(ts, idx), _step_ctx())
    total = out.logs["pll/loss"] + 0.3 * out.logs["pll/uniform"]
    assert out.loss.item() == pytest.approx(total.item(), rel=1e-6)
    # decoder off: L_uniform acts on the linear head's rows
    m = _method(ts, decoder_enabled=False, uniform_tau=0.5)
    assert m.class_embeddings() is m.head.weight


def test_confidence_survives_a_checkpoint_round_trip():
    ts = _train_set()
    m = _method(ts, revision_threshold=0.0, decoder_layers=1, decoder_heads=2)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for step in range(6):
        out = m.training_step(_batch(ts, torch.arange(N)), _step_ctx(step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    buf = io.BytesIO()
    torch.save({"model": m.state_dict(), "method": m.method_state()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    m2 = _method(
        ts, revision_threshold=0.0, decoder_layers=1, decoder_heads=2
    )  # fresh on_train_start
    m2.load_state_dict(ckpt["model"])
    m2.load_method_state(ckpt["method"])
    for key, val in m.method_state().items():
        assert torch.equal(getattr(m2, key), val), key
    assert m2.on_epoch_end(1) == m.on_epoch_end(1)
    with pytest.raises(ValueError, match="training set has"):
        _method(_train_set()).load_method_state({k: v[:5] for k, v in ckpt["method"].items()})


def test_bad_knobs_raise():
    for knobs, msg in [
        ({"labels_candidates": "majority"}, "labels.candidates"),
        ({"labels_k": 0}, "labels.k"),
        ({"confidence_update": "proden"}, "confidence.update"),
        ({"revision_threshold": -0.5}, "revision.threshold"),
        ({"revision_start_epoch": -1}, "revision.start_epoch"),
        ({"uniform_tau": 0.0}, "uniform.tau"),
        ({"decoder_heads": 5}, "decoder.dim"),
        ({"labels_ambiguous": "noisy"}, "labels.ambiguous"),
        ({"labels_attack_eps": 0.0}, "labels.attack_eps"),
        ({"labels_attack_steps": 0}, "labels.attack_steps"),
        ({"labels_entropy_threshold": 1.0}, "labels.entropy_threshold"),
        ({"uniform_mode": "fixed"}, "uniform.mode"),
    ]:
        with pytest.raises(ValueError, match=msg):
            create_method("pll", TinyBackbone(), C, **knobs)
    with pytest.raises(TypeError, match="unknown settings"):
        create_method("pll", TinyBackbone(), C, revision_enabled=True)


def test_stray_single_votes_are_not_candidates():
    ts = _train_set()
    ts.votes[0, 5] = 1.0  # one annotator's stray vote
    m = _method(ts)
    assert not m.candidates[0, 5] and m.candidates[0].sum() == 2


def test_vote_entropy_gives_sets_to_the_ambiguous_only():
    ts = _train_set()
    ts.votes[::3, :C] = 0.0
    ts.votes[torch.arange(0, N, 3), ts.labels[::3]] = 10.0  # unanimous: not ambiguous
    m = _method(ts, labels_ambiguous="vote_entropy", labels_entropy_threshold=0.2)
    amb = vote_entropy(ts.votes, C) > 0.2
    assert torch.equal(m.ambiguous, amb) and 0 < amb.sum() < N
    sets = vote_candidates(ts.votes, 2, num_classes=C)
    assert torch.equal(m.candidates[amb], sets[amb])
    assert torch.equal(m.candidates[~amb], F.one_hot(ts.labels[~amb], C).bool())
    metrics = m.on_epoch_end(0)
    assert metrics["pll/ambiguous"] == pytest.approx(amb.float().mean().item())
    assert metrics["pll/ambiguous_coverage"] == 1.0
    with pytest.raises(ValueError, match="vote_entropy needs annotator votes"):
        _method(_train_set(votes=False), labels_ambiguous="vote_entropy")


class _TwoFeatures(nn.Module):
    """pooled(x) = the first two pixels: a warm-up model whose attack is worked by hand."""

    def pooled(self, x):
        return x.flatten(1)[:, :2]


def test_fgsm_flip_by_hand():
    # Class means (1, 0) and (0, 1). Features (1, 0.9): class 0 by a small angle; FGSM with
    # eps = 0.1 px moves each input 0.1 / 0.5 = 0.2 against class 0: (0.8, 1.1) -> class 1.
    # Features (1, 0.1): (0.8, 0.3) stays class 0. A tiny eps flips neither.
    x = torch.tensor([[1.0, 0.9, 0.0, 0.0], [1.0, 0.1, 0.0, 0.0]])
    protos = torch.eye(2)
    batches = [{"image": x, "index": torch.arange(2)}]
    flips = adversarial_flips(_TwoFeatures(), protos, iter(batches), 2, eps=0.1, steps=1)
    assert flips.tolist() == [True, False]
    assert not adversarial_flips(_TwoFeatures(), protos, iter(batches), 2, eps=1e-4).any()
    # PGD with the same radius reaches the same flip in smaller steps
    flips = adversarial_flips(_TwoFeatures(), protos, iter(batches), 2, eps=0.1, steps=4)
    assert flips.tolist() == [True, False]


def test_adversarial_ambiguity_keeps_clear_samples_singletons():
    ts = _train_set()
    m = _method(ts, labels_ambiguous="adversarial", labels_attack_eps=1e-6)
    assert not m.ambiguous.any()
    assert torch.equal(m.candidates, F.one_hot(ts.labels, C).bool())
    m = _method(ts, labels_ambiguous="adversarial", labels_attack_eps=0.5, labels_attack_steps=3)
    assert m.ambiguous.any()
    sets = vote_candidates(ts.votes, 2, num_classes=C)
    assert torch.equal(m.candidates[m.ambiguous], sets[m.ambiguous])
    assert (m.candidates[~m.ambiguous].sum(dim=1) == 1).all()
    state = m.method_state()
    assert torch.equal(state["ambiguous"], m.ambiguous)


def test_precompute_starts_the_queries_on_the_optimal_positions():
    m = _method(decoder_layers=1, decoder_heads=2)  # uniform.mode=precompute (default)
    q = F.normalize(m.decoder.query_embed.detach(), dim=1)
    cos = (q @ q.T)[~torch.eye(C, dtype=torch.bool)]
    assert (cos + 1 / (C - 1)).abs().max() < 1e-4  # the regular simplex: K <= d + 1
    torch.testing.assert_close(F.normalize(m.uniform_targets, dim=1), q)
    out = m.training_step(_batch(_train_set(), torch.arange(N)), _step_ctx())
    assert out.logs["pll/uniform"].item() == pytest.approx(0.0, abs=1e-6)
    # a handed-over head keeps its queries; the targets are rotated towards them
    head = {k: torch.randn_like(v) for k, v in m.decoder.state_dict().items()}
    torch.manual_seed(0)
    m2 = create_method("pll", TinyBackbone(), C, decoder_layers=1, decoder_heads=2)
    m2.load_handoff({"head": head})
    m2.on_train_start(_ctx(_train_set()))
    torch.testing.assert_close(m2.decoder.query_embed.detach(), head["query_embed"])
    pos = optimal_positions(C, 16, 0.001, seed=0).float()
    assert (m2.uniform_targets @ m2.uniform_targets.T - pos @ pos.T).abs().max() < 1e-4


def test_regularize_at_paper_tau_has_a_gradient_only_without_self():
    norms = {}
    for exclude_self in (False, True):
        m = _method(uniform_mode="regularize", uniform_exclude_self=exclude_self)  # tau 0.001
        out = m.training_step(_batch(_train_set(), torch.arange(N)), _step_ctx())
        assert out.logs["pll/uniform"].item() == pytest.approx(m.uniform_term().item())
        (grad,) = torch.autograd.grad(m.uniform_term(), m.decoder.query_embed)
        norms[exclude_self] = grad.norm().item()
    assert norms[True] > 1e-3  # Done-when: not negligible at tau = 0.001 with exclude_self
    assert norms[False] < 1e-3  # Eq. 2 as printed: float32 round-off


@pytest.mark.parametrize("model", ["vit_tiny_cpu", "resnet_tiny_cpu"])
def test_real_backbones_one_step(model):
    backbones = pytest.importorskip("fer_core.models.backbones")
    if model not in backbones.list_backbones():
        pytest.skip(f"{model} is not registered")
    torch.manual_seed(0)
    bb = backbones.create_backbone(model, img_size=16, in_chans=3)
    m = create_method("pll", bb, C)
    ts = _train_set()
    m.on_train_start(_ctx(ts))
    out = m.training_step(_batch(ts, torch.arange(8)), _step_ctx())
    out.loss.backward()
    assert out.logits.shape == (8, C) and torch.isfinite(out.loss)
    assert m.predict(_batch(ts, torch.arange(3))["image"]).shape == (3, C)


@pytest.mark.slow
def test_trainer_run_and_resume_keep_the_confidence(tmp_path):
    loop = pytest.importorskip("fer_core.engine.recipe")
    from fer_core.engine.build import compose
    from fer_core.engine.checkpoint import load_checkpoint

    over = [
        "method=pll",
        "model=resnet_tiny_cpu",
        "method.revision.threshold=0.0",
        "data.n_train=48",
        "data.n_val=16",
        "data.n_test=16",
        "data.img_size=32",
        "trainer.batch_size=16",
        "trainer.progress=false",
    ]
    first = loop.run_recipe(compose([*over, "trainer.epochs=1"]), tmp_path / "a")
    for key in ("pll/coverage", "pll/set_size", "pll/revised", "pll/disamb_acc", "test/acc_true"):
        assert key in first.metrics, key
    ckpt = tmp_path / "a" / "checkpoints" / "last.pt"
    state = load_checkpoint(ckpt)["method_state"]
    assert state["confidence"].shape == (48, 7)
    # Tamper with the saved state: every sample one-hot on its last candidate. Revision keeps a
    # one-hot row as it is, so a resumed run must end with exactly these rows (a fresh start would not).
    full = torch.load(ckpt, weights_only=True)
    cand = full["method_state"]["candidates"]
    last = cand.shape[1] - 1 - cand.flip(1).float().argmax(dim=1)
    full["method_state"]["confidence"] = torch.nn.functional.one_hot(last, cand.shape[1]).float()
    torch.save(full, tmp_path / "tampered.pt")
    seen = {}

    def grab(stage, epoch, metrics, checkpoint_dir):
        seen[epoch] = metrics
        return True

    loop.run_recipe(
        compose([*over, "trainer.epochs=2"]),
        tmp_path / "b",
        on_epoch_end=grab,
        resume=tmp_path / "tampered.pt",
    )
    assert seen
    after = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["method_state"]
    assert torch.equal(after["confidence"], full["method_state"]["confidence"])
