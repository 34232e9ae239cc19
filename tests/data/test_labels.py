"""Vote candidates, majority labels and the FERPlus label modes (hand cases + the real votes)."""

from __future__ import annotations

import math

import pytest
import torch

from fer_core.data.ferplus import read_votes
from fer_core.data.labels import (
    ferplus_label_mode,
    majority_labels,
    vote_candidates,
    vote_entropy,
)


def V(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_vote_candidates_rule():
    votes = V(
        [5, 3, 2, 0, 0, 0, 0, 0, 0, 0],  # plain top-2
        [4, 3, 3, 0, 0, 0, 0, 0, 0, 0],  # tie at the 2nd place: both included
        [0, 0, 0, 0, 0, 0, 0, 0, 6, 4],  # only unknown / NF: empty set
        [7, 0, 0, 0, 0, 0, 0, 0, 3, 0],  # unknown never counts; a single non-zero emotion
        [2, 0, 0, 0, 0, 0, 0, 5, 3, 0],  # contempt counts with 8 classes only
    )
    c = vote_candidates(votes, 2, num_classes=8)
    assert c.dtype == torch.bool and c.shape == (5, 8)
    assert c[0].nonzero().flatten().tolist() == [0, 1]
    assert c[1].nonzero().flatten().tolist() == [0, 1, 2]
    assert not c[2].any()
    assert c[3].nonzero().flatten().tolist() == [0]
    assert c[4].nonzero().flatten().tolist() == [0, 7]
    c7 = vote_candidates(votes, 2, num_classes=7)
    assert c7.shape == (5, 7) and c7[4].nonzero().flatten().tolist() == [0]
    assert vote_candidates(votes, 1)[1].nonzero().flatten().tolist() == [0]
    assert vote_candidates(votes, 8)[0].sum() == 3  # never more than the non-zero emotions
    with pytest.raises(ValueError, match="k must"):
        vote_candidates(votes, 0)
    with pytest.raises(ValueError, match=r"\[N, 10\]"):
        vote_candidates(torch.zeros(3, 8), 2)


def test_single_stray_votes_are_not_candidates():
    votes = V(
        [6, 1, 1, 0, 0, 0, 0, 0, 2, 0],  # two stray votes: the set is the top class alone
        [5, 2, 1, 0, 0, 0, 0, 0, 0, 0],  # the 2-vote class stays, the stray one goes
        [1, 1, 1, 1, 0, 0, 0, 0, 6, 0],  # only strays: empty (the method uses the hard label)
    )
    c = vote_candidates(votes, 2)
    assert [r.nonzero().flatten().tolist() for r in c] == [[0], [0, 1], []]
    # min_votes=1 keeps every non-zero count (the rule before the reference's outlier removal)
    c1 = vote_candidates(votes, 2, min_votes=1)
    assert c1[0].nonzero().flatten().tolist() == [0, 1, 2] and c1[2].sum() == 4


def test_with_ten_votes_k3_and_k4_are_the_same_sets():
    """Every way of spreading 10 votes over the 7 emotions (8,008): with counts of at least 2 and
    ties kept, K = 3 and K = 4 give the same candidate set (four classes of >= 2 votes in 10 leave
    the third and fourth at exactly 2, a tie K = 3 keeps), so pll_k's K = 3 and K = 4 rows agree
    on SynthFER's and FERPlus's 10 annotators; K = 2 differs, and with 20 votes K = 4 does."""
    import itertools

    rows = [
        [b - a - 1 for a, b in zip((-1, *bars), (*bars, 16), strict=True)]
        for bars in itertools.combinations(range(16), 6)
    ]
    votes = torch.zeros(len(rows), 10)
    votes[:, :7] = torch.tensor(rows, dtype=torch.float32)
    assert len(rows) == 8008 and bool((votes.sum(1) == 10).all())
    c2, c3, c4 = (vote_candidates(votes, k, 7) for k in (2, 3, 4))
    assert torch.equal(c3, c4)
    assert int((c2 != c3).any(1).sum()) > 0
    twenty = torch.tensor([[6.0, 5, 4, 3, 2, 0, 0, 0, 0, 0]])
    assert vote_candidates(twenty, 3, 7).sum() == 3 and vote_candidates(twenty, 4, 7).sum() == 4


def test_vote_entropy_by_hand():
    votes = V(
        [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [5, 5, 0, 0, 0, 0, 0, 0, 3, 0],  # unknown does not count
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 4, 6],
    )
    h = vote_entropy(votes)
    want = [0.0, math.log(2) / math.log(8), 1.0, 0.0]
    assert torch.allclose(h, torch.tensor(want), atol=1e-6)
    assert vote_entropy(votes[1:2], num_classes=7).item() == pytest.approx(
        math.log(2) / math.log(7), abs=1e-6
    )


def test_majority_labels():
    votes = V(
        [1, 4, 0, 0, 0, 0, 0, 0, 5, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 10, 0],
        [3, 3, 0, 0, 0, 0, 0, 0, 0, 0],
    )
    assert majority_labels(votes).tolist() == [1, -1, 0]
    g = torch.Generator().manual_seed(0)
    seen = {int(majority_labels(votes[2:], generator=g)[0]) for _ in range(30)}
    assert seen == {0, 1}  # seeded random tie breaking


def test_ferplus_modes_by_hand():
    # after dropping single votes: [4, 0, 0, 0, 3, 2, 0, 0, 0, 0], total 9
    row = V([4, 0, 0, 1, 3, 2, 0, 0, 0, 0])
    keep, _ = ferplus_label_mode(row, "majority")
    assert not keep.any()  # 4 is not more than half of 9
    keep, t = ferplus_label_mode(row, "probability")
    assert keep.all() and torch.allclose(t[0, :6], torch.tensor([4, 0, 0, 0, 3, 0]) / 7.0)
    keep, t = ferplus_label_mode(row, "multi_target")  # >= 30 % of 9 = 2.7
    assert torch.allclose(t[0, :6], torch.tensor([4, 0, 0, 0, 3, 0]) / 7.0)
    keep, t = ferplus_label_mode(V([6, 2, 0, 0, 0, 0, 0, 0, 2, 0]), "majority")
    assert keep.all() and t[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]
    # probability: unknown tied with the top emotion -> the loop stops and unknown is removed,
    # leaving 4 of 10 votes (<= 50 %) -> dropped; with 3 emotions first it is kept
    assert not ferplus_label_mode(V([4, 0, 0, 0, 0, 0, 0, 0, 4, 2]), "probability")[0].any()
    keep, t = ferplus_label_mode(V([5, 3, 0, 0, 0, 0, 0, 0, 3, 0]), "probability")
    assert keep.all() and torch.allclose(t[0, :2], torch.tensor([5.0, 3.0]) / 8)
    # unknown on top -> dropped; NF plurality -> dropped
    assert not ferplus_label_mode(V([0, 2, 0, 0, 0, 0, 0, 0, 8, 0]), "crossentropy")[0].any()
    assert not ferplus_label_mode(V([2, 0, 0, 0, 0, 0, 0, 0, 0, 8]), "votes")[0].any()
    # contempt rows are dropped in the 7-class setting
    assert not ferplus_label_mode(V([0, 0, 0, 0, 0, 0, 0, 9, 1, 0]), "majority", num_classes=7)[
        0
    ].any()
    with pytest.raises(ValueError, match="label_mode"):
        ferplus_label_mode(row, "soft")


# Per-split class counts of each mode on the real FERPlus votes (neutral, happiness, surprise,
# sadness, anger, disgust, fear, contempt). Reference-code semantics; stated in docs/data.md.
REAL_COUNTS = {
    "majority": {
        "train": [8740, 7287, 3149, 3014, 2100, 119, 532, 119],
        "val": [1182, 865, 415, 351, 287, 24, 62, 13],
        "test": [1090, 893, 396, 384, 273, 18, 83, 16],
    },
    "probability": {
        "train": [10122, 7503, 3524, 3430, 2407, 169, 641, 160],
        "val": [1317, 897, 450, 401, 314, 31, 72, 23],
        "test": [1251, 925, 435, 435, 320, 22, 92, 25],
    },
    "multi_target": {
        "train": [10071, 7492, 3486, 3399, 2327, 153, 598, 145],
        "val": [1307, 893, 446, 400, 307, 30, 71, 18],
        "test": [1243, 921, 438, 434, 302, 21, 90, 23],
    },
}


def test_ferplus_modes_on_the_real_votes(shared_dir):
    data = read_votes(shared_dir / "data" / "ferplus")
    assert {s: len(v[0]) for s, v in data.items()} == {"train": 28561, "val": 3579, "test": 3574}
    for mode, per_split in REAL_COUNTS.items():
        for split, counts in per_split.items():
            keep, t = ferplus_label_mode(data[split][1], mode)
            assert torch.bincount(t.argmax(1), minlength=8).tolist() == counts, (mode, split)
            assert torch.allclose(t.sum(1), torch.ones(len(t)))
    # crossentropy is probability under another name in the reference code
    v = data["val"][1]
    assert torch.equal(
        ferplus_label_mode(v, "crossentropy")[1], ferplus_label_mode(v, "probability")[1]
    )
    # the real data's reason for PLL: top-2 vote sets hold the majority label and more
    c = vote_candidates(data["train"][1], 2)
    assert c.sum(1).float().mean() > 1.5
