"""Mix-supervised contrastive loss (000, Eq. 11-13).

Mixed samples ``Mix(x_a, x_b)`` (Mixup or CutMix, ``fer_core/methods/mixing.py``) carry the mixed
label ``lam * onehot(y_a) + (1 - lam) * onehot(y_b)``. Eq. 13: a mixed sample is a positive of
anchor ``i`` when the distance between its mixed label and the anchor's one-hot label is at most
the threshold ``t`` (``mix.threshold``, 0.5 in Sec. IV-B), else a negative.

The distance (``mix.distance``). The paper writes ``|Mix(y_a, y_b) - y_i| <= t`` and does not name
the norm. With ``w`` the weight of the anchor's class in the mixed label: ``linf`` (default), the
largest per-class difference, is ``1 - w``, so at ``t = 0.5`` a mixed sample is positive iff at
least half of it comes from the anchor's class (``lam >= 0.5`` when ``y_a = y_i != y_b``; both
parts of the anchor's class: always; neither: never). ``l1``, the sum of the absolute differences,
is ``2 * (1 - w)``: at ``t = 0.5`` positive iff ``w >= 0.75``.

What the anchors are contrasted with (Eq. 11 sums over pairs ``a, b`` of the multiview batch):
this implementation reads the pairs as including ``a = b``, whose mix is the unmixed view itself
(label one-hot, distance 0 to the same class and 1 (linf) / 2 (l1) to any other). The anchors are
the unmixed views (they have hard labels, Case 1-3 of Sec. III-B compare mixed labels to "the
anchor's label"); the contrast set is the unmixed views plus the mixed samples, the anchor itself
excluded. With ``t < 1`` (linf) the unmixed part reproduces Eq. 6's positives exactly, so MSCL is
SCL with the mixed samples added as extra candidates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fer_core.losses.supcon import contrastive_loss

MIX_DISTANCES = ("linf", "l1")
_TOL = 1e-6  # lam is float32: lam = 0.5 exactly at t = 0.5 must count as positive


def check_threshold(threshold: float) -> None:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"mix.threshold must be in [0, 1], got {threshold!r}")


def check_distance(distance: str) -> None:
    if distance not in MIX_DISTANCES:
        raise ValueError(
            f"mix.distance must be one of {', '.join(MIX_DISTANCES)}, got {distance!r}"
        )


def mixed_targets(
    labels: torch.Tensor, index: torch.Tensor, lam: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Mixed labels ``lam * onehot(y) + (1 - lam) * onehot(y[index])``: float [N, num_classes].

    Args:
        labels: long [N] labels of the unmixed samples (all >= 0).
        index: long [N] the partner of each sample (``mixed_i = Mix(x_i, x_index[i])``).
        lam: float [N] the weight of sample i in its mix.
    """
    one = F.one_hot(labels, num_classes).float()
    lam = lam.to(one)[:, None]
    return lam * one + (1.0 - lam) * one[index]


def label_distance(
    anchor_labels: torch.Tensor, targets: torch.Tensor, distance: str = "linf"
) -> torch.Tensor:
    """``|onehot(y_i) - target_k|`` under ``distance``: float [A, K].

    Args:
        anchor_labels: long [A] hard labels of the anchors (>= 0).
        targets: float [K, C] (mixed) label distributions of the candidates.
    """
    check_distance(distance)
    if targets.dim() != 2:
        raise ValueError(f"targets must be [K, C], got {tuple(targets.shape)}")
    one = F.one_hot(anchor_labels, targets.shape[1]).to(targets.dtype)  # [A, C]
    diff = (one[:, None, :] - targets[None, :, :]).abs()  # [A, K, C]
    return diff.amax(dim=-1) if distance == "linf" else diff.sum(dim=-1)


def mscl_positive_mask(
    anchor_labels: torch.Tensor,
    targets: torch.Tensor,
    threshold: float = 0.5,
    distance: str = "linf",
) -> torch.Tensor:
    """Eq. 13: float [A, K], 1 where ``distance(mixed label k, label of anchor i) <= t``."""
    check_threshold(threshold)
    return (label_distance(anchor_labels, targets, distance) <= threshold + _TOL).float()


def mscl_loss(
    anchors: torch.Tensor,
    anchor_labels: torch.Tensor,
    mixed: torch.Tensor,
    mixed_label_targets: torch.Tensor,
    *,
    threshold: float = 0.5,
    distance: str = "linf",
    temperature: float = 0.07,
    base_temperature: float = 0.07,
) -> torch.Tensor:
    """Eq. 11 (in the reference SupCon form of ``losses/supcon.py``).

    Args:
        anchors: [A, D] features of the unmixed views (all views of the batch, view-major).
        anchor_labels: long [A] their labels (>= 0).
        mixed: [M, D] features of the mixed samples.
        mixed_label_targets: float [M, C] their mixed labels (:func:`mixed_targets`).
        threshold, distance: ``mix.threshold`` and ``mix.distance`` (Eq. 13).
        temperature, base_temperature: ``tau`` and the base temperature.
    Returns:
        scalar loss over the A anchors; candidates = the other anchors + the mixed samples.
    """
    a, m = anchors.shape[0], mixed.shape[0]
    if anchor_labels.shape != (a,) or mixed_label_targets.shape[0] != m:
        raise ValueError(
            f"anchor_labels must be [{a}] and mixed_label_targets [{m}, C], got "
            f"{tuple(anchor_labels.shape)} and {tuple(mixed_label_targets.shape)}"
        )
    c = mixed_label_targets.shape[1]
    targets = torch.cat([F.one_hot(anchor_labels, c).to(mixed_label_targets), mixed_label_targets])
    pos = mscl_positive_mask(anchor_labels, targets, threshold, distance)  # [A, A + M]
    exclude = torch.zeros(a, a + m, dtype=torch.bool, device=anchors.device)
    exclude[:, :a] = torch.eye(a, dtype=torch.bool, device=anchors.device)
    return contrastive_loss(
        anchors,
        torch.cat([anchors, mixed]),
        pos,
        exclude,
        temperature=temperature,
        base_temperature=base_temperature,
    )
