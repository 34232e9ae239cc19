"""SynthFER: the embedded, deterministic synthetic facial-expression dataset.

Generative story of one sample (all draws from a generator seeded by ``(seed, split)``):

1. true class ``y`` from a prior ``p_c ∝ n_c ** imbalance`` with ``n_c`` the RAF-DB basic train
   counts (``imbalance`` 0 = balanced, 1 = RAF-DB's skew: fear, disgust and contempt rare);
2. an 8-dim action-unit-like expression ``e = s * ((1 - m) P_y + m P_partner) + eps``: ``P`` the
   FACS-inspired class prototypes (:data:`PROTOTYPES`), ``s ~ U(intensity_floor, 1)`` the
   intensity (near-neutral faces are hard), ``m ~ U(0.15, 0.5)`` with probability ``ambiguity``
   a mixture toward the class's confusion partner (fear-surprise, anger-disgust,
   sadness-neutral, contempt-happiness; 1 in 5 toward a random class), ``eps`` idiosyncratic noise;
3. a rendered face (``synthfer_render.py``): pose, scale, rotation, head-turn squeeze, hair,
   clutter, lighting, contrast, pixel noise, an occluding bar at ``occlusion_rate``;
4. 10 annotators (FERPlus's 10 vote columns): each perceives ``e + N(0, annotator_noise)``
   (1.5x the noise when the face is occluded) and votes ``softmax(-||e' - P_c||^2 / 0.1)``;
   a vote is ``unknown`` with probability ``unknown_rate`` and ``NF`` with 0.005 (0.03 occluded).
   With ``vote_source="real_ferplus"`` the 10 votes are instead those of a real FERPlus training
   image whose plurality emotion is the true class (``ferplus_votes.py``; seeded, cached).

The training label is the plurality of the emotion votes (``label_source="votes"``, like FERPlus,
ties broken at random, seeded) or the generating class (``label_source="true"``); the generating
class is always kept as ``true_labels`` and the exact face box as ``boxes``.
"""

from __future__ import annotations

import torch

from fer_core.data.base import FERImageSet
from fer_core.data.labels import majority_labels
from fer_core.data.synthfer_render import render_faces

VERSION = 1  # bump when the generator changes: it is part of the cache key

# FERPlus class order; columns are synthfer_render.AU_NAMES.
PROTOTYPES = torch.tensor(
    [
        # raise furrow  eye  nose  corner open stretch onesided
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # neutral
        [0.0, 0.0, -0.4, 0.1, 1.0, 0.35, 0.5, 0.0],  # happiness
        [1.0, 0.0, 0.9, 0.0, 0.0, 0.9, -0.2, 0.0],  # surprise
        [0.5, 0.5, -0.4, 0.0, -0.8, 0.0, 0.0, 0.0],  # sadness
        [-0.3, 1.0, 0.3, 0.2, -0.3, 0.0, 0.4, 0.0],  # anger
        [-0.2, 0.5, -0.5, 1.0, -0.5, 0.15, 0.2, 0.0],  # disgust
        [0.8, 0.5, 1.0, 0.0, -0.2, 0.5, 0.9, 0.0],  # fear
        [0.0, 0.0, -0.1, 0.0, 0.25, 0.0, 0.0, 0.9],  # contempt
    ]
)
PARTNER = (
    3,
    7,
    6,
    0,
    5,
    4,
    2,
    1,
)  # neutral<->sadness, happiness<->contempt, surprise<->fear, anger<->disgust
PARTNER_7 = (3, 0, 6, 0, 5, 4, 2)  # without contempt, happiness mixes toward neutral
# RAF-DB basic train counts in FERPlus order (contempt is not in RAF-DB; FERPlus-like rarity).
RAFDB_COUNTS = torch.tensor([2524.0, 4772.0, 1290.0, 1982.0, 705.0, 717.0, 281.0, 200.0])
SPLIT_IDS = {"train": 1, "val": 2, "test": 3}
VOTE_TEMPERATURE = 0.1
IDIOSYNCRATIC_NOISE = 0.12
CHUNK = 512  # rendering batch; fixed so that results do not depend on it
VOTE_SOURCES = ("simulated", "real_ferplus")


def class_prior(num_classes: int, imbalance: float) -> torch.Tensor:
    """p_c ∝ n_c ** imbalance over the first ``num_classes`` classes."""
    p = RAFDB_COUNTS[:num_classes] ** float(imbalance)
    return p / p.sum()


def check_knobs(**k) -> None:
    """Validate SynthFER knobs; raise ValueError naming the knob, the value and what is allowed."""
    for name in ("n_train", "n_test"):
        if not isinstance(k[name], int) or k[name] < 1:
            raise ValueError(f"data.{name} must be an integer >= 1, got {k[name]!r}")
    if not isinstance(k["n_val"], int) or k["n_val"] < 0:
        raise ValueError(f"data.n_val must be an integer >= 0, got {k['n_val']!r}")
    if not isinstance(k["img_size"], int) or not 16 <= k["img_size"] <= 512:
        raise ValueError(f"data.img_size must be an integer in [16, 512], got {k['img_size']!r}")
    if k["channels"] not in (1, 3):
        raise ValueError(f"data.channels must be 1 or 3, got {k['channels']!r}")
    if k["num_classes"] not in (7, 8):
        raise ValueError(f"data.num_classes must be 7 or 8, got {k['num_classes']!r}")
    for name in ("ambiguity", "intensity_floor", "occlusion_rate", "imbalance", "unknown_rate"):
        if not 0.0 <= float(k[name]) <= 1.0:
            raise ValueError(f"data.{name} must be in [0, 1], got {k[name]!r}")
    if not 0.0 <= float(k["annotator_noise"]) <= 5.0:
        raise ValueError(f"data.annotator_noise must be in [0, 5], got {k['annotator_noise']!r}")
    if not isinstance(k["num_annotators"], int) or k["num_annotators"] < 1:
        raise ValueError(
            f"data.num_annotators must be an integer >= 1, got {k['num_annotators']!r}"
        )
    if k["label_source"] not in ("votes", "true"):
        hint = (
            " (YAML reads an unquoted true as a boolean: quote it)"
            if k["label_source"] is True
            else ""
        )
        raise ValueError(
            f"data.label_source must be 'votes' or 'true', got {k['label_source']!r}{hint}"
        )
    if k.get("vote_source", "simulated") not in VOTE_SOURCES:
        raise ValueError(
            f"data.vote_source must be one of {', '.join(VOTE_SOURCES)}, got {k['vote_source']!r}"
        )


def sample_expressions(
    n: int,
    num_classes: int,
    g: torch.Generator,
    *,
    ambiguity: float,
    intensity_floor: float,
    imbalance: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1-2 of the module docstring. Returns y [n] long, e [n, 8], mix [n] (0 = unmixed)."""
    y = torch.multinomial(class_prior(num_classes, imbalance), n, replacement=True, generator=g)
    s = intensity_floor + (1.0 - intensity_floor) * torch.rand(n, generator=g)
    mixed = torch.rand(n, generator=g) < ambiguity
    m = torch.where(mixed, 0.15 + 0.35 * torch.rand(n, generator=g), torch.zeros(n))
    partner = torch.tensor(PARTNER if num_classes == 8 else PARTNER_7)[y]
    rnd = torch.randint(0, num_classes - 1, (n,), generator=g)
    rnd = rnd + (rnd >= y).long()  # a random class other than y
    partner = torch.where(torch.rand(n, generator=g) < 0.2, rnd, partner)
    P = PROTOTYPES[:num_classes]
    e = s[:, None] * ((1 - m)[:, None] * P[y] + m[:, None] * P[partner])
    e = e + IDIOSYNCRATIC_NOISE * torch.randn(n, 8, generator=g)
    return y, e, m


def annotate(
    e: torch.Tensor,
    occluded: torch.Tensor,
    num_classes: int,
    g: torch.Generator,
    *,
    annotator_noise: float,
    unknown_rate: float,
    num_annotators: int,
) -> torch.Tensor:
    """Step 4: vote counts [n, 10] (8 emotions, unknown, NF)."""
    n = e.shape[0]
    noise = annotator_noise * (1.0 + 0.5 * (occluded > 0).float())
    perceived = e[:, None, :] + noise[:, None, None] * torch.randn(
        n, num_annotators, 8, generator=g
    )
    d2 = ((perceived[:, :, None, :] - PROTOTYPES[:num_classes]) ** 2).sum(-1)  # [n, A, C]
    probs = torch.softmax(-d2 / VOTE_TEMPERATURE, dim=-1).reshape(n * num_annotators, num_classes)
    choice = torch.multinomial(probs, 1, generator=g).view(n, num_annotators)
    r = torch.rand(n, num_annotators, generator=g)
    nf_rate = torch.where(occluded > 0, 0.03, 0.005)[:, None]
    choice = torch.where(r < unknown_rate, 8, choice)
    choice = torch.where((r >= unknown_rate) & (r < unknown_rate + nf_rate), 9, choice)
    votes = torch.zeros(n, 10)
    votes.scatter_add_(1, choice, torch.ones(n, num_annotators))
    return votes


def generate_split(
    split: str,
    n: int,
    *,
    seed: int,
    img_size: int,
    channels: int,
    num_classes: int,
    ambiguity: float,
    intensity_floor: float,
    occlusion_rate: float,
    imbalance: float,
    annotator_noise: float,
    unknown_rate: float,
    num_annotators: int,
    label_source: str,
    vote_source: str = "simulated",
) -> FERImageSet:
    """Generate one split (deterministic in ``(seed, split)`` and the knobs; not in the other splits' sizes)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + SPLIT_IDS[split])
    y, e, mix = sample_expressions(
        n, num_classes, g, ambiguity=ambiguity, intensity_floor=intensity_floor, imbalance=imbalance
    )
    occ = torch.where(
        torch.rand(n, generator=g) < occlusion_rate, 1 + torch.randint(0, 2, (n,), generator=g), 0
    )
    meta = {"generator_version": VERSION}
    if vote_source == "real_ferplus":
        from fer_core.data.ferplus_votes import draw_real_votes

        votes, _ = draw_real_votes(y, num_classes, g)
        meta["vote_source"] = vote_source
    else:
        votes = annotate(
            e,
            occ,
            num_classes,
            g,
            annotator_noise=annotator_noise,
            unknown_rate=unknown_rate,
            num_annotators=num_annotators,
        )
    labels = (
        majority_labels(votes, num_classes, generator=g) if label_source == "votes" else y.clone()
    )
    images = torch.empty(n, channels, img_size, img_size, dtype=torch.uint8)
    boxes = torch.empty(n, 4)
    gr = torch.Generator().manual_seed(int(seed) * 1_000_003 + 10 * SPLIT_IDS[split] + 7)
    for i in range(0, n, CHUNK):
        img, box = render_faces(e[i : i + CHUNK], occ[i : i + CHUNK], img_size, gr, channels)
        images[i : i + CHUNK] = (img * 255.0).round().to(torch.uint8)
        boxes[i : i + CHUNK] = box
    return FERImageSet(
        images=images,
        labels=labels,
        num_classes=num_classes,
        votes=votes,
        true_labels=y,
        boxes=boxes,
        name="synthfer",
        split=split,
        meta=meta,
    )


def generate(**knobs) -> dict[str, FERImageSet]:
    """All splits (train, val if ``n_val`` > 0, test) without the cache."""
    sizes = {"train": knobs.pop("n_train"), "val": knobs.pop("n_val"), "test": knobs.pop("n_test")}
    return {s: generate_split(s, n, **knobs) for s, n in sizes.items() if n > 0}
