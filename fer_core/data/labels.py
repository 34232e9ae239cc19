"""Labels from annotator votes: candidate sets, majority labels, the FERPlus label modes.

Votes are ``[N, 10]`` counts in ``VOTE_COLUMNS`` order (8 emotions in FERPlus order, then
``unknown`` and ``NF``). The FERPlus modes port ``_process_data`` of Microsoft's reference code
(FERPlus/src/ferplus.py) line for line, including its tie handling.
"""

from __future__ import annotations

import math
import sys

import torch

NUM_EMOTIONS = 8
UNKNOWN, NF = 8, 9
LABEL_MODES = ("majority", "probability", "crossentropy", "multi_target", "votes")


def _check_votes(votes: torch.Tensor) -> torch.Tensor:
    votes = torch.as_tensor(votes, dtype=torch.float32)
    if votes.dim() != 2 or votes.shape[1] != 10:
        raise ValueError(
            f"votes must be [N, 10] (8 emotions, unknown, NF), got {tuple(votes.shape)}"
        )
    if (votes < 0).any():
        raise ValueError("votes must be non-negative counts")
    return votes


def _check_classes(num_classes: int) -> None:
    if num_classes not in (7, 8):
        raise ValueError(f"num_classes must be 7 or 8, got {num_classes!r}")


def vote_candidates(
    votes: torch.Tensor, k: int, num_classes: int = 8, min_votes: float = 2.0
) -> torch.Tensor:
    """Vote-based candidate label sets (INTERFACES.md "Labels").

    The candidates of a sample are its ``k`` largest emotion vote counts of at least ``min_votes``,
    ties at the k-th place included; ``unknown`` and ``NF`` never count (nor ``contempt`` when
    ``num_classes`` is 7). ``min_votes=2`` drops single stray votes as outliers, as FERPlus's
    reference code does (``_process_data``: counts of 1 are zeroed); ``min_votes`` <= 1 keeps every
    non-zero count. A sample without such a vote gets an empty set.

    Args:
        votes: [N, 10] counts. k: >= 1. num_classes: 7 or 8. min_votes: > 0.
    Returns:
        bool [N, num_classes].
    """
    votes = _check_votes(votes)
    _check_classes(num_classes)
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not min_votes > 0:
        raise ValueError(f"min_votes must be > 0, got {min_votes!r}")
    emo = votes[:, :num_classes]
    emo = torch.where(emo >= min_votes, emo, torch.zeros_like(emo))
    kk = min(k, num_classes)
    kth = emo.topk(kk, dim=1).values[:, kk - 1 : kk]  # [N, 1] the k-th largest count
    return (emo >= kth) & (emo > 0)


def vote_entropy(votes: torch.Tensor, num_classes: int = 8) -> torch.Tensor:
    """Normalised entropy of the emotion votes, ``H(v / |v|) / log(num_classes)``: float [N] in
    [0, 1] (0: unanimous; 1: spread evenly). Rows without an emotion vote get 0."""
    votes = _check_votes(votes)
    _check_classes(num_classes)
    emo = votes[:, :num_classes]
    total = emo.sum(dim=1, keepdim=True)
    p = emo / total.clamp_min(1e-12)
    h = -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)
    return torch.where(total.squeeze(1) > 0, h / math.log(num_classes), torch.zeros_like(h))


def majority_labels(
    votes: torch.Tensor, num_classes: int = 8, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Plurality label over the emotion columns: [N] long, -1 where no emotion got a vote.

    Ties go to the first class in canonical order unless ``generator`` is given (then a seeded
    random pick among the tied classes). For the stricter FERPlus rule (top count > half of all
    votes, else dropped) use ``ferplus_label_mode(votes, "majority")``.
    """
    votes = _check_votes(votes)
    _check_classes(num_classes)
    emo = votes[:, :num_classes]
    if generator is None:
        lab = emo.argmax(dim=1)
    else:
        top = emo == emo.max(dim=1, keepdim=True).values
        noise = torch.rand(emo.shape, generator=generator)
        lab = torch.where(top, noise, torch.full_like(noise, -1.0)).argmax(dim=1)
    lab[emo.sum(dim=1) == 0] = -1
    return lab


def _process_row(raw: list[float], mode: str) -> list[float]:
    """The reference ``_process_data`` for one row of 10 counts; returns the 10-way distribution."""
    size = len(raw)
    unknown = [0.0] * size
    unknown[-2] = 1.0
    raw = [
        0.0 if r < 1.0 + sys.float_info.epsilon else float(r) for r in raw
    ]  # single votes: outliers
    total = sum(raw)
    emotion = [0.0] * size
    if mode == "majority":
        maxval = max(raw)
        if maxval > 0.5 * total:
            emotion[raw.index(maxval)] = maxval
        else:
            emotion = unknown
    elif mode in ("probability", "crossentropy"):
        sum_part, count, valid = 0.0, 0, True
        while sum_part < 0.75 * total and count < 3 and valid:
            maxval = max(raw)
            for i in range(size):
                if raw[i] == maxval:
                    emotion[i] = maxval
                    raw[i] = 0.0
                    sum_part += emotion[i]
                    count += 1
                    if i >= 8:  # unknown or NF tie with the top votes
                        valid = False
                        if sum(emotion) > maxval:  # other emotions came before it
                            emotion[i] = 0.0
                            count -= 1
                        break
        if sum(emotion) <= 0.5 * total or count > 3:
            emotion = unknown
    elif mode == "multi_target":
        for i in range(size):
            if raw[i] >= 0.3 * total:
                emotion[i] = raw[i]
        if sum(emotion) <= 0.5 * total:
            emotion = unknown
    else:  # pragma: no cover - checked by the caller
        raise AssertionError(mode)
    s = sum(emotion)
    return [e / s for e in emotion]


def ferplus_label_mode(
    votes: torch.Tensor, mode: str, num_classes: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets of one FERPlus label mode (reference code, see module docstring).

    ``majority``: one-hot if the top count (after dropping single votes) is more than half of the
    votes; ``probability`` / ``crossentropy``: the top emotions, at most 3, until they cover
    >= 75 % of the votes; ``multi_target``: emotions with >= 30 % of the votes; ``votes``: the
    raw vote distribution (no outlier removal). A row whose result peaks at unknown/NF (first
    maximum), or (``num_classes`` 7) at contempt, is dropped, as the reference does; the kept
    rows' emotion part is renormalised (the reference's ``emotion[:-2]`` / sum).

    Returns:
        keep: bool [N]; targets: float [N_kept, num_classes] summing to 1 per row.
    """
    votes = _check_votes(votes)
    _check_classes(num_classes)
    if mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {mode!r}")
    if mode == "votes":
        s = votes.sum(dim=1, keepdim=True)
        dist = torch.where(s > 0, votes / s.clamp_min(1e-12), torch.zeros_like(votes))
        dist[(s == 0).squeeze(1), UNKNOWN] = 1.0
    else:
        dist = torch.tensor([_process_row(r, mode) for r in votes.tolist()], dtype=torch.float32)
    keep = dist.argmax(dim=1) < num_classes
    emo = dist[keep, :num_classes]
    return keep, emo / emo.sum(dim=1, keepdim=True)
