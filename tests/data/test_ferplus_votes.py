"""SynthFER with real FERPlus votes (data.vote_source=real_ferplus)."""

from __future__ import annotations

import pytest
import torch

from fer_core.data import build_splits
from fer_core.data.ferplus_votes import (
    ASSET,
    LICENSE,
    draw_real_votes,
    plurality_pools,
    training_votes,
)


def test_the_asset_and_its_licence_ship_with_the_package():
    assert ASSET.is_file() and LICENSE.is_file() and "MIT" in LICENSE.read_text()
    votes = training_votes()
    assert votes.shape[1] == 10 and 28_000 < len(votes) <= 28_709
    assert (votes.sum(1) == 9).any()  # some real rows sum to 9


def test_each_image_takes_a_real_row_of_its_class_seeded():
    y = torch.tensor([0, 1, 1, 2, 6, 3, 4, 5, 0, 2] * 3)
    a, rows = draw_real_votes(y, 7, torch.Generator().manual_seed(1))
    b, rows_b = draw_real_votes(y, 7, torch.Generator().manual_seed(1))
    _, rows_c = draw_real_votes(y, 7, torch.Generator().manual_seed(2))
    table = training_votes()
    assert (
        torch.equal(a, table[rows]) and torch.equal(rows, rows_b) and not torch.equal(rows, rows_c)
    )
    pools = plurality_pools(table, 7)
    for c, r in zip(y.tolist(), rows.tolist()):
        assert r in set(pools[c].tolist())  # the drawn row's plurality is the image's class
        emo = table[r, :7]
        assert int(emo.argmax()) == c and int((emo == emo.max()).sum()) == 1


def test_synthfer_real_votes_are_class_conditional_and_keep_the_images():
    kw = dict(n_train=200, n_val=0, n_test=50, img_size=32, val_fraction=0.0)
    sim = build_splits("synthfer", **kw)
    real = build_splits("synthfer", vote_source="real_ferplus", **kw)
    assert torch.equal(sim.train.images, real.train.images)  # same faces, other annotators
    assert torch.equal(sim.train.true_labels, real.train.true_labels)
    assert sim.data_hash != real.data_hash
    table = {tuple(r) for r in training_votes().tolist()}
    assert all(tuple(v) in table for v in real.train.votes.tolist())
    emo = real.train.votes[:, :7]
    assert torch.equal(emo.argmax(1), real.train.true_labels)  # plurality = the true class
    assert build_splits("synthfer", vote_source="real_ferplus", **kw).data_hash == real.data_hash


def test_bad_vote_source_and_corrupt_asset(tmp_path):
    with pytest.raises(ValueError, match="data.vote_source must be one of simulated, real_ferplus"):
        build_splits("synthfer", vote_source="ferplus", n_train=16, n_test=8)
    with pytest.raises(ValueError, match="data.vote_source=real_ferplus: .*missing"):
        training_votes(str(tmp_path / "nope.csv"))
    bad = tmp_path / "bad.csv"
    bad.write_text(ASSET.read_text().splitlines()[0] + "\nTraining,fer1.png,4,x,0,0,0,0,0,0,0,0\n")
    with pytest.raises(ValueError, match="corrupt at line 2"):
        training_votes(str(bad))


def test_rows_summing_to_nine_are_drawn_as_they_are(tmp_path):
    # a small table in the asset's format: class 0 has only a 9-vote row, class 1 a 10-vote row
    # and a tie (skipped: no unique plurality), so every draw of class 0 must be the 9-vote row
    path = tmp_path / "votes.csv"
    head = ASSET.read_text().splitlines()[0]
    path.write_text(
        head + "\n"
        "Training,a.png,5,2,0,0,0,0,0,0,1,1\n"  # class 0, sums to 9
        "Training,b.png,0,6,1,0,0,0,0,3,0,0\n"  # class 1, sums to 10
        "Training,c.png,4,4,0,0,0,0,0,0,2,0\n"  # tie: no plurality, never drawn
        "PublicTest,d.png,0,0,9,0,0,0,0,0,1,0\n"  # not a training row
    )
    y = torch.tensor([0, 1, 0, 0, 1])
    votes, rows = draw_real_votes(y, 2, torch.Generator().manual_seed(0), path=str(path))
    assert rows.tolist() == [0, 1, 0, 0, 1]
    assert votes[0].tolist() == [5, 2, 0, 0, 0, 0, 0, 0, 1, 1] and votes[0].sum() == 9
    assert torch.equal(votes, training_votes(str(path))[rows])
    with pytest.raises(ValueError, match="data.vote_source=real_ferplus: no real training row"):
        draw_real_votes(torch.tensor([2]), 3, torch.Generator(), path=str(path))
