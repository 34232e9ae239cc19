"""Method ``pll`` (001): candidate sets, confidence state, revision, metrics, knobs and spaces."""

from __future__ import annotations

import inspect
import io
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch import nn

from fer_core.data.base import FERImageSet
from fer_core.data.labels import vote_candidates
from fer_core.losses.pll import uniform_confidence
from fer_core.methods import StepContext, TrainContext, create_method, list_methods
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
    ]:
        with pytest.raises(ValueError, match=msg):
            create_method("pll", TinyBackbone(), C, **knobs)
    with pytest.raises(TypeError, match="unknown settings"):
        create_method("pll", TinyBackbone(), C, revision_enabled=True)


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
