"""The registered ``synthfer`` dataset: knobs, validation and the cache (generator: synthfer.py)."""

from __future__ import annotations

from fer_core.data._registry import DATASETS, VALUE_CHECKS
from fer_core.data.base import DataSplits
from fer_core.data.decoded import cached_entry, finish_splits
from fer_core.data.synthfer import VERSION, check_knobs, generate


@DATASETS.register("synthfer")
def build_synthfer(
    n_train: int = 4000,
    n_val: int = 600,
    n_test: int = 1000,
    img_size: int = 48,
    channels: int = 1,
    num_classes: int = 7,
    ambiguity: float = 0.3,
    intensity_floor: float = 0.45,
    occlusion_rate: float = 0.1,
    imbalance: float = 0.5,
    annotator_noise: float = 0.25,
    unknown_rate: float = 0.03,
    num_annotators: int = 10,
    label_source: str = "votes",
    vote_source: str = "simulated",
    val_fraction: float = 0.1,
    seed: int = 0,
) -> DataSplits:
    """SynthFER, the embedded synthetic dataset (generative story: ``fer_core/data/synthfer.py``).

    kwargs: n_train / n_val / n_test (split sizes; n_val 0 = carve val_fraction of train, or use
    test when val_fraction is 0 too), img_size (px), channels (1|3), num_classes (7 drops
    contempt | 8), ambiguity (probability of a mixture toward the confusion partner),
    intensity_floor (lowest expression intensity; lower = more near-neutral faces),
    occlusion_rate (bars over eyes or mouth), imbalance (0 balanced .. 1 RAF-DB skew),
    annotator_noise (std of each annotator's perception), unknown_rate (per-vote probability of
    'unknown'), num_annotators (10 as FERPlus), label_source (votes: plurality of the votes, like
    FERPlus | true: the generating class), vote_source (simulated: the 10 simulated annotators |
    real_ferplus: the votes of a real FERPlus training image of the true class's plurality;
    ``ferplus_votes.py``), val_fraction, seed.

    Generated once per knob set and cached under ``$FER_STUDY_CACHE/synthfer/<hash>``.
    """
    knobs = dict(
        n_train=n_train, n_val=n_val, n_test=n_test, img_size=img_size, channels=channels, num_classes=num_classes,
        ambiguity=ambiguity, intensity_floor=intensity_floor, occlusion_rate=occlusion_rate, imbalance=imbalance,
        annotator_noise=annotator_noise, unknown_rate=unknown_rate, num_annotators=num_annotators,
        label_source=label_source, seed=seed,
    )  # fmt: skip
    if vote_source != "simulated":  # simulated keeps the knob set (and cache key) of version 1
        knobs["vote_source"] = vote_source
    check_synthfer(**knobs, val_fraction=val_fraction)
    key_obj = {"version": VERSION, **knobs}
    info = {"name": "synthfer", "num_classes": num_classes, "meta": {"generator_version": VERSION}}
    splits, info, key = cached_entry("synthfer", key_obj, lambda: (generate(**knobs), info))
    return finish_splits(splits, info, key, val_fraction=float(val_fraction), seed=seed)


def check_synthfer(*, val_fraction: float = 0.1, **knobs) -> None:
    """The ``synthfer`` knobs' values (ValueError naming the knob), before anything is drawn."""
    check_knobs(**knobs)
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction!r}")


VALUE_CHECKS["synthfer"] = check_synthfer
