"""Recipes and protocols: ``run_recipe(cfg, run_dir, on_epoch_end=None, resume=None) -> RunResult``.

This module sits above the loop (``engine/loop.py`` trains one prepared stage) and holds everything
that turns a composed config into prepared stages:

- **Stages and hand-off.** Stages run in the recipe's order (``build.stage_configs``). A stage with
  ``init_from: {stage, parts}`` starts from those parts of the earlier stage's ``handoff_state()``
  (``methods/base.py``): ``backbone`` (timm naming), ``head``, ``teacher``, ``samples``. Before any
  training every stage's method is built once and the parts are checked on both sides (a part the
  earlier method cannot give or the later one cannot take is a ``ConfigError`` naming both).
  The earlier stage hands on its best-validation weights (labelled stages) or its last ones.
- **Stage cache.** Every stage before the last is cached under ``$FER_STUDY_CACHE/stages/<key>``
  (``engine/stages.py``), keyed by its config, the keys of all stages before it, the data hash and
  (inside the config) the seed, so a sweep over a last-stage knob runs each earlier stage once per
  seed, across trials and studies.
- **Protocols** (``trainer.protocol``): ``finetune`` (everything trains), ``linear`` (frozen
  backbone and BatchNorm statistics; only the rest trains), ``semi`` (``trainer.semi.fraction``,
  ``per_class`` or ``total`` labelled, stratified and seeded by ``trainer.seed``, the rest handed
  to the method as unlabelled; 004 Tables 10, 3, 4), ``transfer``
  (``trainer.init``: the backbone of another run's checkpoint) and ``kfold`` (train+val pooled into
  ``trainer.kfold.k`` stratified folds, 004 Table 5: fold i trains on the rest, a seeded stratified
  ``trainer.kfold.val_fraction`` of it (null: ``data.val_fraction``) validates, and tests on fold
  i; ``test/*`` are the mean over folds and ``test/*_std`` the standard deviation, ddof=1; fold
  runs live in ``run_dir/fold_<i>``; set on the last stage of a recipe, every stage runs per fold;
  a resumed run keeps finished folds and continues the interrupted one; ``trainer.kfold.protocol``
  says how the last stage trains inside a fold: ``finetune`` or ``semi``, the label budget of
  ``trainer.semi.*`` drawn from the fold's training part, as 004 Table 5's SSFER-5/10/25 %).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from fer_core.data.base import DataSplits, FERImageSet, class_names, concat
from fer_core.engine import build
from fer_core.engine.batches import unlabelled_settings, view_names
from fer_core.engine.build import ConfigError, TrainerSettings
from fer_core.engine.checkpoint import BEST, LAST, load_checkpoint
from fer_core.engine.logging import RunLogger
from fer_core.engine.loop import OnEpochEnd, RunResult, StagePlan, StageTrainer
from fer_core.engine.seed import derive_seed, seed_everything
from fer_core.engine.stages import StageStopped, cached_stage, stage_key
from fer_core.methods.base import Method, MethodInfo

__all__ = [
    "RunResult",
    "check_handoffs",
    "check_stage_data",
    "check_kfold",
    "kfold_settings",
    "kfold_splits",
    "run_kfold",
    "run_recipe",
    "run_stages",
    "stage_data",
]


def run_recipe(
    cfg: DictConfig | dict,
    run_dir: Path | str,
    on_epoch_end: OnEpochEnd | None = None,
    resume: Path | str | None = None,
) -> RunResult:
    """Run every stage of ``cfg`` (from ``build.compose``) into ``run_dir`` (module docstring)."""
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    run_dir = Path(run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    stages = build.stage_configs(cfg)
    last = build.trainer_settings(stages[-1][1]["trainer"])
    resume = resume or last.resume
    if any(scfg["trainer"].get("protocol") == "kfold" for _, scfg in stages):
        return run_kfold(stages, run_dir, on_epoch_end, resume)  # refuses it on earlier stages
    return run_stages(stages, run_dir, on_epoch_end, resume)


# --------------------------------------------------------------------------- data and methods
@dataclass
class StageData:
    """What one stage trains and evaluates on, after its protocol."""

    splits: DataSplits
    train: FERImageSet
    unlabelled: FERImageSet | None


def stage_data(splits: DataSplits, s: TrainerSettings) -> StageData:
    """The protocol's view of the data: ``semi`` splits train into labelled + unlabelled."""
    from fer_core.data.splits import label_fraction_indices

    train, unlabelled = splits.train, None
    if s.protocol == "semi":
        semi = s.semi or {}
        per_class, total = semi.get("per_class"), semi.get("total")
        if per_class is not None and total is not None:
            raise ConfigError(
                f"trainer.semi.per_class={per_class} and trainer.semi.total={total} are both set; "
                "set one (or neither: trainer.semi.fraction)"
            )
        fraction = semi.get("fraction") if per_class is None and total is None else None
        try:  # the draw depends on the labels and trainer.seed only: the same for every method
            idx = label_fraction_indices(
                train.labels, fraction=fraction, per_class=per_class, seed=s.seed, total=total
            )
        except ValueError as e:
            raise ConfigError(str(e)) from e
        rest = torch.ones(len(train), dtype=torch.bool)
        rest[idx] = False
        train, unlabelled = train.subset(idx), train.subset(torch.nonzero(rest).flatten())
    return StageData(splits, train, unlabelled)


def method_info(scfg: dict, data: StageData) -> MethodInfo:
    imgs = data.train.images
    return MethodInfo(
        num_classes=int(data.splits.num_classes),
        img_size=int(imgs.shape[-1]),
        channels=int(imgs.shape[1]),
        dataset=str(scfg["data"]["name"]),
        batch_size=int(scfg["trainer"]["batch_size"]),
    )


def build_stage_method(scfg: dict, data: StageData, s: TrainerSettings) -> Method:
    """The stage's method; ``transfer`` starts its backbone from ``trainer.init``."""
    init = None
    if s.protocol == "transfer":
        p = Path(str(s.init)).expanduser().resolve()
        init = str(p / BEST if (p / BEST).is_file() else p / LAST) if p.is_dir() else str(p)
    info = method_info(scfg, data)
    method = build.build_method(scfg, info, checkpoint=init)
    try:  # views and the unlabelled stream: bad policy names or counts fail before training
        view_names(method.views, method.needs, s.aug["policy"], info.dataset)
        if method.needs.unlabelled:
            unlabelled_settings(s.semi)
    except ValueError as e:
        raise ConfigError(f"stage method {method.method_name!r}: {e}") from e
    return method


def freeze_for_protocol(method: Method, s: TrainerSettings) -> bool:
    """``linear``: the backbone does not train (its BatchNorm statistics stay frozen in the loop)."""
    if s.protocol != "linear":
        return False
    for p in method.backbone.parameters():
        p.requires_grad_(False)
    return True


def own_data(scfg: dict) -> bool:
    """A stage on ``data=faces`` (unlabelled face images) keeps its data when ``run_stages`` is
    given the splits of a FER dataset (k-fold folds, tests): the folds split the FER dataset, and
    the face images' stage is cached once per seed, not per fold."""
    return str(scfg.get("data", {}).get("name")) == "faces"


def check_stage_data(
    stages: list[tuple[str, dict]], methods: dict[str, Method], datas: list[StageData]
) -> None:
    """Before training: ``data=faces`` only in label-free stages, and a stage whose method needs
    unlabelled samples has some left (``trainer.semi.*`` did not label the whole training split)."""
    shapes = {n: tuple(d.train.images.shape[1:]) for (n, _), d in zip(stages, datas)}
    for (name, scfg), data in zip(stages, datas):
        method = methods[name]
        init = scfg.get("init_from")
        if init and init["stage"] in shapes and shapes[init["stage"]] != shapes[name]:
            (c0, s0, _), (c1, s1, _) = shapes[init["stage"]], shapes[name]
            raise ConfigError(
                f"stage {name!r} takes {', '.join(init['parts'])} from stage {init['stage']!r}, "
                f"whose images are {c0} x {s0} px (data.channels x data.img_size), but its own are "
                f"{c1} x {s1} px; set the same data.channels and data.img_size for both stages "
                f"(e.g. stages.{init['stage']}.data.channels={c1})"
            )
        if own_data(scfg) and method.needs.labels:
            raise ConfigError(
                f"stage {name!r}: data=faces has no labels, but method {method.method_name!r} "
                "needs them; use data=faces in label-free stages only (e.g. mae, maskfeat: "
                "stages.pretrain.data=faces) and a FER dataset here"
            )
        if method.needs.unlabelled and data.unlabelled is not None and len(data.unlabelled) == 0:
            semi = build.trainer_settings(scfg["trainer"]).semi
            raise ConfigError(
                f"stage {name!r}: method {method.method_name!r} trains on unlabelled samples, but "
                f"trainer.semi (fraction={semi.get('fraction')}, per_class={semi.get('per_class')}, "
                f"total={semi.get('total')}) labels all {len(data.train)} training images; "
                "allowed: a fraction below 1, or a per_class / total that leaves images unlabelled"
            )


def check_handoffs(stages: list[tuple[str, dict]], methods: dict[str, Method]) -> None:
    """Every ``init_from`` asks only for parts the earlier method gives and the later one takes."""
    from fer_core.engine.presets import linear_without_backbone

    names = [n for n, _ in stages]
    for i, (name, scfg) in enumerate(stages):
        init = scfg.get("init_from")
        if (
            len(stages) > 1
            and scfg["trainer"].get("protocol") == "linear"
            and not scfg["model"].get("checkpoint")
            and (not init or "backbone" not in init["parts"])
        ):  # a single-stage run may probe its random initial weights (a baseline)
            raise ConfigError(linear_without_backbone(f"stage {name!r}", first=i == 0))
        if not init:
            continue
        src = init["stage"]
        if src not in names[:i]:
            raise ConfigError(
                f"stage {name!r}: init_from.stage {src!r} is not an earlier stage; "
                f"allowed: {', '.join(names[:i]) or '(none: first stage)'}"
            )
        gives, takes = methods[src].handoff_parts(), methods[name].handoff_parts()
        for part in init["parts"]:
            if part not in gives:
                raise ConfigError(
                    f"stage {name!r}: init_from.parts asks for {part!r}, but stage {src!r} "
                    f"(method {methods[src].method_name!r}) has only {', '.join(gives)}"
                )
            if part not in takes:
                raise ConfigError(
                    f"stage {name!r}: init_from.parts asks for {part!r}, but its method "
                    f"{methods[name].method_name!r} takes only {', '.join(takes)}"
                )


# --------------------------------------------------------------------------- the stages
def run_stages(
    stages: list[tuple[str, dict]],
    run_dir: Path,
    on_epoch_end: OnEpochEnd | None = None,
    resume: Path | str | None = None,
    splits: DataSplits | None = None,
    data_tag: str = "",
) -> RunResult:
    """Run ``stages`` (``build.stage_configs``) into ``run_dir``; ``splits`` replaces every
    stage's data (tests, k-fold folds), ``data_tag`` then names that data in cache keys."""
    run_dir = Path(run_dir)
    settings = [build.trainer_settings(scfg["trainer"]) for _, scfg in stages]
    split_memo: dict[str, DataSplits] = {}

    def splits_of(scfg: dict) -> DataSplits:
        if splits is not None and not own_data(scfg):
            return splits
        key = json.dumps(scfg["data"], sort_keys=True, default=str)
        if key not in split_memo:
            split_memo[key] = build.build_data(scfg["data"])
        return split_memo[key]

    datas = [stage_data(splits_of(scfg), s) for (_, scfg), s in zip(stages, settings)]
    # Build every method once before any training: knob errors and hand-off parts fail early.
    methods = {
        n: build_stage_method(scfg, d, s) for (n, scfg), d, s in zip(stages, datas, settings)
    }
    check_stage_data(stages, methods, datas)
    check_handoffs(stages, methods)

    ckpt = load_checkpoint(resume) if resume else None
    logger = RunLogger(run_dir, history=ckpt["history"] if ckpt else None)
    handoffs: dict[str, dict] = dict(ckpt.get("handoffs", {})) if ckpt else {}
    prev_key, step_offset = "", 0
    final: dict[str, float] = {}
    stopped = False
    ran: dict[str, bool] = {}
    try:
        for i, (name, scfg) in enumerate(stages):
            s, data = settings[i], datas[i]
            tag = (data_tag if not own_data(scfg) else "") or data.splits.data_hash or ""
            key = stage_key(scfg, prev_key, tag)
            if ckpt is not None and i < int(ckpt["stage_index"]):
                prev_key, step_offset = key, step_offset + int(s.epochs)
                continue
            state = ckpt if ckpt is not None and i == int(ckpt["stage_index"]) else None

            def make_trainer(
                i=i, name=name, scfg=scfg, s=s, data=data, state=state, off=step_offset
            ):
                seed_everything(derive_seed(s.seed, i))  # the method's initial weights
                method = build_stage_method(scfg, data, s)
                samples = None
                init = scfg.get("init_from")
                if init:
                    parts = {p: handoffs[init["stage"]][p] for p in init["parts"]
                             if p in handoffs[init["stage"]]}  # fmt: skip
                    samples = parts.pop("samples", None)
                    method.load_handoff(parts)
                frozen = freeze_for_protocol(method, s)
                plan = StagePlan(name, i, scfg, s, method, data.splits, data.train,
                                 data.unlabelled, frozen, samples)  # fmt: skip
                return StageTrainer(plan, run_dir, logger, on_epoch_end, state, off, handoffs)

            if i < len(stages) - 1 and state is None:

                def run(make=make_trainer, name=name) -> tuple[dict, list[dict]]:
                    out = make().run()
                    if out["stopped"]:
                        raise StageStopped(name)
                    return out["handoff"], out["history"]

                handoff, hist, ran[name] = cached_stage(key, run)
                if not ran[name]:  # a cache hit: show the cached stage in this run's logs
                    for h in hist:
                        metrics = {k: v for k, v in h.items() if k not in ("stage", "epoch")}
                        logger.epoch(name, h["epoch"], metrics, step_offset + h["epoch"] + 1)
            else:
                out = make_trainer().run()
                handoff, ran[name] = out["handoff"], True
                if i == len(stages) - 1:
                    final = out["final"]
                if out["stopped"]:
                    stopped = True
                    break
            handoffs[name] = handoff
            prev_key, step_offset = key, step_offset + int(s.epochs)
    except StageStopped:
        stopped = True
    logger.final = final
    logger.write_json()
    logger.close()
    return RunResult(
        metrics=final, history=logger.history, run_dir=run_dir, stopped=stopped,
        extra={"ran": ran},
    )  # fmt: skip


# --------------------------------------------------------------------------- k-fold
def _concat(a: FERImageSet, b: FERImageSet) -> FERImageSet:
    """train + val as one pool: a view over the shared storage when both are views of one split
    (a carved-out validation), so the folds copy no images (``data/base.py``'s ``concat``)."""
    return concat(a, b, "pool")


@dataclass(frozen=True)
class KFoldSettings:
    """``trainer.kfold`` of the last stage, checked: ``k`` folds, each validating on a seeded
    stratified ``val_fraction`` of its training part (0: on its test fold, the papers' practice)."""

    k: int
    val_fraction: float
    seed: int
    protocol: str = "finetune"  # how each fold's last stage trains (trainer.kfold.protocol)


def kfold_settings(stages: list[tuple[str, dict]]) -> KFoldSettings:
    """The last stage's k-fold knobs; ``val_fraction: null`` inherits ``data.val_fraction``.

    ``trainer.protocol=kfold`` belongs to the last stage only (earlier stages train on each
    fold's training part, as the last stage does)."""
    for name, scfg in stages[:-1]:
        if scfg["trainer"].get("protocol") == "kfold":
            raise ConfigError(
                f"stage {name!r}: trainer.protocol=kfold is allowed on the last stage only "
                f"({stages[-1][0]!r}); earlier stages run once per fold on its training part"
            )
    last = build.trainer_settings(stages[-1][1]["trainer"])
    kf = dict(last.kfold or {})
    k = kf.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ConfigError(f"trainer.kfold.k={k!r} is not allowed; use an integer >= 2")
    vf = kf.get("val_fraction")
    if vf is None:
        vf = stages[-1][1]["data"].get("val_fraction")
    if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0.0 <= float(vf) < 1.0:
        raise ConfigError(
            f"trainer.kfold.val_fraction={vf!r} is not allowed; use a number in [0, 1) "
            "(0: select on the test fold) or null (data.val_fraction)"
        )
    protocol = kf.get("protocol", "finetune")
    if protocol not in KFOLD_PROTOCOLS:
        raise ConfigError(
            f"trainer.kfold.protocol={protocol!r} is not allowed; use one of "
            f"{', '.join(KFOLD_PROTOCOLS)} (semi: trainer.semi.* of each fold's training part "
            "labelled, the rest unlabelled, 004 Table 5)"
        )
    return KFoldSettings(k=k, val_fraction=float(vf), seed=int(last.seed), protocol=protocol)


# how the last stage trains inside each fold (its own protocol is kfold)
KFOLD_PROTOCOLS = ("finetune", "semi")


def fold_stages(stages: list[tuple[str, dict]], protocol: str) -> list[tuple[str, dict]]:
    """The stages one fold runs: the last stage's ``kfold`` protocol becomes ``protocol``."""
    name, scfg = stages[-1]
    last = {**scfg, "trainer": {**scfg["trainer"], "protocol": protocol}}
    return [*stages[:-1], (name, last)]


def check_kfold(pool_labels: torch.Tensor, k: int, num_classes: int | None = None) -> None:
    """Every class of the pool (train + val) must have at least ``k`` samples."""
    labels = torch.as_tensor(pool_labels, dtype=torch.long)
    labels = labels[labels >= 0]
    counts = torch.bincount(labels, minlength=int(num_classes or 0))
    present = torch.nonzero(counts).flatten()
    if present.numel() == 0:
        raise ConfigError("trainer.protocol=kfold: the pool (train + val) has no labelled sample")
    small = int(present[counts[present].argmin()])
    n = int(counts[small])
    if k > n:
        names = class_names(int(num_classes)) if num_classes in (7, 8) else None
        who = f"{names[small]!r}" if names else f"class {small}"
        raise ConfigError(
            f"trainer.kfold.k={k} is more folds than the smallest class ({who}) has samples "
            f"in train + val ({n}); allowed: 2..{n}"
        )


def kfold_splits(splits: DataSplits, k: int, seed: int, val_fraction: float) -> list[DataSplits]:
    """Pool train + val, deal it into ``k`` stratified folds; fold i tests on fold i and trains on
    the rest minus a seeded stratified ``val_fraction`` of it that validates (0: validate on the
    test fold). ``run_kfold`` passes ``trainer.kfold.val_fraction`` (module docstring)."""
    from fer_core.data.splits import stratified_kfold, stratified_split

    pool = _concat(splits.train, splits.val)
    check_kfold(pool.labels, int(k), splits.num_classes)
    out = []
    for tr, te in stratified_kfold(pool.labels, int(k), seed=seed):
        if val_fraction > 0:
            rest, val = stratified_split(pool.labels[tr], val_fraction, seed=seed)
            train, val_set = pool.subset(tr[rest], "train"), pool.subset(tr[val], "val")
        else:
            train, val_set = pool.subset(tr, "train"), pool.subset(te, "val")
        out.append(DataSplits(
            train=train, val=val_set, test=pool.subset(te, "test"),
            num_classes=splits.num_classes, val_is_official=False, data_hash=splits.data_hash,
        ))  # fmt: skip
    return out


def kfold_root(resume: Path | str | None, run_dir: Path) -> Path | None:
    """Where a resumed k-fold run's ``fold_<i>`` directories are: ``resume`` itself or its
    nearest parent holding them (``.../fold_1/checkpoints``), else ``run_dir`` (e.g. a copy of
    the checkpoint under Ray Tune's experiment); None without ``resume``."""
    if resume is None:
        return None
    p = Path(resume).expanduser().resolve()
    for d in [p, *p.parents][:4]:
        if d.is_dir() and any(d.glob("fold_*")):
            return d
    return run_dir


def _finished_fold(fold_dir: Path) -> RunResult | None:
    """A fold that ran to its end (``metrics.json`` with a final ``test/*``), else None."""
    path = fold_dir / "metrics.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    final = data.get("final") or {}
    if not any(k.startswith("test/") for k in final):
        return None
    return RunResult(metrics=final, history=list(data.get("history", [])), run_dir=fold_dir)


def _fold_metrics(result: RunResult, stage: str) -> dict[str, float]:
    """The fold's last epoch of ``stage`` + its final ``test/*``: a fold resumed at its last
    epoch has nothing left to run and returns ``test/*`` only, so the epoch comes from history."""
    rows = [h for h in result.history if h.get("stage") == stage]
    last = {k: v for k, v in (rows[-1] if rows else {}).items() if k not in ("stage", "epoch")}
    return {**last, **result.metrics}


def run_kfold(
    stages: list[tuple[str, dict]],
    run_dir: Path,
    on_epoch_end: OnEpochEnd | None = None,
    resume: Path | str | None = None,
) -> RunResult:
    """k runs of the recipe, one per fold, into ``run_dir/fold_<i>``; the callback sees each
    fold's stages as ``fold<i>/<stage>``. Returns the mean over folds of every ``test/*`` and
    ``val/*`` (last epoch) metric, their ``*_std`` (ddof=1), each fold's as ``fold<i>/<metric>``
    and ``kfold/k``. ``resume`` (any checkpoint of the run, or its directory) keeps the folds that
    finished and continues the interrupted one from its ``checkpoints/last.pt``."""
    kf = kfold_settings(stages)
    splits = build.build_data(stages[-1][1]["data"])
    folds = kfold_splits(splits, kf.k, kf.seed, kf.val_fraction)  # checks k before training
    root = kfold_root(resume, run_dir)
    last_stage = stages[-1][0]
    results: list[RunResult] = []
    for i, fold in enumerate(folds):

        def cb(stage, epoch, metrics, ckpt, i=i):
            if on_epoch_end is None:
                return True
            return on_epoch_end(f"fold{i}/{stage}", epoch, metrics, ckpt)

        done = _finished_fold(root / f"fold_{i}") if root is not None else None
        if done is not None:
            results.append(done)
            continue
        fold_resume = None
        if root is not None and (root / f"fold_{i}" / "checkpoints" / LAST).is_file():
            fold_resume = root / f"fold_{i}" / "checkpoints"
        tag = f"{splits.data_hash}-kfold{kf.k}-{kf.val_fraction:g}-{i}-{kf.seed}"
        results.append(
            run_stages(
                fold_stages(stages, kf.protocol),
                run_dir / f"fold_{i}",
                cb,
                fold_resume,
                fold,
                data_tag=tag,
            )  # fmt: skip
        )
        if results[-1].stopped:
            break
    per_fold = [_fold_metrics(r, last_stage) for r in results]
    final: dict[str, float] = {}
    keys = sorted({m for f in per_fold for m in f if m.startswith(("test/", "val/"))})
    for m in keys:
        vals = [f[m] for f in per_fold if m in f]
        final[m] = statistics.fmean(vals)
        if len(vals) > 1:
            final[f"{m}_std"] = statistics.stdev(vals)
    for i, f in enumerate(per_fold):
        final.update({f"fold{i}/{m}": float(v) for m, v in f.items() if m in keys})
    final["kfold/k"] = float(len(results))
    history = [{**h, "fold": i} for i, r in enumerate(results) for h in r.history]
    path = run_dir / "metrics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"history": history, "final": final}, indent=1))
    tmp.replace(path)
    return RunResult(metrics=final, history=history, run_dir=run_dir,
                     stopped=any(r.stopped for r in results))  # fmt: skip
