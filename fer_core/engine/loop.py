"""The training loop: ``run_recipe(cfg, run_dir, on_epoch_end=None, resume=None) -> RunResult``.

A recipe is a list of stages (``engine/build.py``); each stage trains one method
(``methods/base.py``): batches from ``engine/batches.py``, timm optimiser + per-update schedule,
optional weight EMA (timm ModelEmaV3), bf16 autocast on CUDA, evaluation with torchmetrics,
TensorBoard + ``metrics.json`` (``engine/logging.py``), ``checkpoints/last.pt`` every epoch and
``best.pt`` at the best ``trainer.select_metric``; ``test/*`` come once from the best checkpoint.
A stage's encoder feeds the next stage's backbone; label-free stages before the last are cached
(``engine/stages.py``). Randomness is re-derived from (seed, stage, epoch) at every epoch start,
so resuming from an epoch's checkpoint repeats the uninterrupted run exactly.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from fer_core.engine import build
from fer_core.engine.batches import BatchMaker, eval_batches
from fer_core.engine.checkpoint import BEST, LAST, load_checkpoint, save_checkpoint
from fer_core.engine.ema import make_ema
from fer_core.engine.logging import RunLogger
from fer_core.engine.metrics import classification_metrics
from fer_core.engine.schedule import current_lr
from fer_core.engine.seed import derive_seed, seed_everything, set_deterministic
from fer_core.engine.stages import StageStopped, cached_stage, stage_key
from fer_core.methods.base import METHODS, Method, StepContext, TrainContext

OnEpochEnd = Callable[[str, int, dict[str, float], Path | None], bool]


@dataclass
class RunResult:
    """Last epoch's metrics + best val + ``test/*``; the per-epoch history; the run directory."""

    metrics: dict[str, float]
    history: list[dict]
    run_dir: Path
    stopped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_recipe(
    cfg: DictConfig | dict,
    run_dir: Path | str,
    on_epoch_end: OnEpochEnd | None = None,
    resume: Path | str | None = None,
) -> RunResult:
    """Run every stage of ``cfg`` (from ``build.compose``) into ``run_dir`` (see module docstring)."""
    from fer_core.engine.protocols import run_kfold

    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(cfg)
    run_dir = Path(run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / "config.yaml", resolve=True)
    stages = build.stage_configs(cfg)
    last = build.trainer_settings(stages[-1][1]["trainer"])
    resume = resume or last.resume
    if last.protocol == "kfold":
        return run_kfold(stages, run_dir, on_epoch_end)
    return run_stages(stages, run_dir, on_epoch_end, resume)


def run_stages(
    stages: list[tuple[str, dict]],
    run_dir: Path,
    on_epoch_end: OnEpochEnd | None = None,
    resume: Path | str | None = None,
    splits=None,
    data_tag: str = "",
) -> RunResult:
    ckpt = load_checkpoint(resume) if resume else None
    logger = RunLogger(run_dir, history=ckpt["history"] if ckpt else None)
    encoders: dict[str, dict] = dict(ckpt["encoders"]) if ckpt else {}
    prev_key, prev_encoder, step_offset = "", None, 0
    final: dict[str, float] = {}
    stopped = False
    try:
        for i, (name, scfg) in enumerate(stages):
            epochs = int(scfg["trainer"]["epochs"])
            key = stage_key(scfg, prev_key, data_tag)
            if ckpt is not None and i < int(ckpt["stage_index"]):
                prev_key, prev_encoder, step_offset = key, encoders[name], step_offset + epochs
                continue
            state = ckpt if ckpt is not None and i == int(ckpt["stage_index"]) else None
            trainer = StageTrainer(
                name, i, scfg, run_dir, logger, on_epoch_end, prev_encoder, state, step_offset,
                encoders, splits,
            )  # fmt: skip
            labels = METHODS.get(scfg["method"]["name"]).needs.labels
            if not labels and i < len(stages) - 1:

                def run(trainer: StageTrainer = trainer) -> tuple[dict, list[dict]]:
                    out = trainer.run()
                    if out["stopped"]:
                        raise StageStopped(trainer.name)
                    return out["encoder"], out["history"]

                prev_encoder, hist, ran = cached_stage(key, run)
                if not ran:  # a cache hit: show the cached stage in this run's logs
                    for h in hist:
                        logger.epoch(name, h["epoch"], {k: v for k, v in h.items()
                                                        if k not in ("stage", "epoch")},
                                     step_offset + h["epoch"] + 1)  # fmt: skip
            else:
                out = trainer.run()
                prev_encoder = out["encoder"]
                final = out["final"]
                if out["stopped"]:
                    stopped = True
                    break
            encoders[name] = prev_encoder
            prev_key, step_offset = key, step_offset + epochs
    except StageStopped:
        stopped = True
    logger.final = final
    logger.write_json()
    logger.close()
    return RunResult(metrics=final, history=logger.history, run_dir=run_dir, stopped=stopped)


class StageTrainer:
    """Trains one stage; ``run()`` -> {"encoder", "history", "final", "stopped"}."""

    def __init__(self, name, index, scfg, run_dir, logger, on_epoch_end, prev_encoder, state,
                 step_offset, encoders, splits=None):  # fmt: skip
        self.name, self.index, self.scfg = name, index, scfg
        self.run_dir, self.logger, self.callback = Path(run_dir), logger, on_epoch_end
        self.prev_encoder, self.state, self.step_offset = prev_encoder, state, step_offset
        self.encoders, self.splits = encoders, splits
        self.s = build.trainer_settings(scfg["trainer"])

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        from fer_core.data.splits import label_fraction_indices

        s = self.s
        self.device = pick_device(s.device)
        cuda = self.device.type == "cuda"
        if s.threads:
            torch.set_num_threads(int(s.threads))
        if s.deterministic:
            set_deterministic(True)
        splits = self.splits or build.build_data(self.scfg["data"])
        self.data = splits
        train, unlabelled = splits.train, None
        if s.protocol == "semi":
            semi = s.semi or {}
            idx = label_fraction_indices(
                train.labels, fraction=None if semi.get("per_class") else semi.get("fraction"),
                per_class=semi.get("per_class"), seed=s.seed,
            )  # fmt: skip
            rest = torch.ones(len(train), dtype=torch.bool)
            rest[idx] = False
            train, unlabelled = train.subset(idx), train.subset(torch.nonzero(rest).flatten())
        self.train_set = train
        self.num_classes = splits.num_classes
        c, h = train.images.shape[1], train.images.shape[-1]
        seed_everything(derive_seed(s.seed, self.index))
        init = None
        if s.protocol == "transfer":
            p = Path(str(s.init)).expanduser().resolve()
            init = str(p / BEST if (p / BEST).is_file() else p / LAST) if p.is_dir() else str(p)
        self.method = build.build_method(self.scfg, self.num_classes, h, c, checkpoint=init)
        if self.prev_encoder is not None:
            self.method.backbone.load_timm_state_dict(self.prev_encoder)
        self.linear = s.protocol == "linear"
        if self.linear:
            for p in self.method.backbone.parameters():
                p.requires_grad_(False)
        self.method.to(self.device)
        self.channels_last = (s.channels_last is True) or (s.channels_last == "auto" and cuda)
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.amp = cuda and s.precision in ("auto", "bf16")
        self.needs = self.method.needs
        self.batches = BatchMaker(
            train, self.needs, s.aug, self.device, unlabelled, self.channels_last
        )
        bs = int(s.batch_size)
        self.drop_last = len(train) >= bs
        self.steps = len(train) // bs if self.drop_last else 1
        self.method.on_train_start(TrainContext(
            train_set=train, num_classes=self.num_classes, device=self.device,
            iterate_train=lambda b: eval_batches(train, b, self.device, self.channels_last),
            run_dir=self.run_dir,
        ))  # fmt: skip
        self.opt = build.build_optimizer(self.scfg["optim"], self.scfg["sched"], self.method)
        self.sched = build.build_scheduler(self.scfg["sched"], self.opt, s.epochs, self.steps)
        self.ema = make_ema(self.method, s.ema)
        self.start_epoch, self.best = 0, {"value": -math.inf, "epoch": -1}
        if self.state is not None:
            st = self.state
            self.method.load_state_dict(st["model"])
            self.method.load_method_state(st["method_state"])
            self.opt.load_state_dict(st["optimizer"])
            if self.ema is not None and st.get("ema") is not None:
                self.ema.load_state_dict(st["ema"])
            self.start_epoch, self.best = int(st["epoch"]) + 1, dict(st["best"])

    # ------------------------------------------------------------------ evaluation
    def eval_model(self):
        return self.ema.module if self.ema is not None else self.method

    @torch.no_grad()
    def evaluate(self, ds, prefix: str) -> tuple[dict[str, float], torch.Tensor]:
        model = self.eval_model()
        was = model.training
        model.eval()
        logits = []
        for b in eval_batches(ds, int(self.s.eval_batch_size), self.device, self.channels_last):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits.append(model.predict(b["image"]).float().cpu())
        model.train(was)
        return classification_metrics(
            torch.cat(logits), ds.labels, self.num_classes, prefix, ds.true_labels
        )

    # ------------------------------------------------------------------ the loop
    def _epoch(self, epoch: int, g: torch.Generator) -> dict[str, float]:
        s, method = self.s, self.method
        method.train()
        if self.linear:
            method.backbone.eval()  # frozen BatchNorm statistics
        method.on_epoch_start(epoch)
        n, bs = len(self.train_set), int(s.batch_size)
        perm = torch.randperm(n, generator=g)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = torch.zeros((), device=self.device)
        logs: dict[str, torch.Tensor] = {}
        gstep = epoch * self.steps
        steps = range(self.steps)
        if s.progress and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                steps = tqdm(steps, desc=f"{self.name} {epoch + 1}/{s.epochs}", leave=False)
            except ImportError:
                pass
        for step in steps:
            idx = perm[step * bs : (step + 1) * bs] if self.drop_last else perm
            batch = self.batches.make(idx, g)
            ctx = StepContext(epoch, step, gstep, self.steps, int(s.epochs), self.device, g)
            self.sched.step_update(gstep)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out = method.training_step(batch, ctx)
            self.opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if s.grad_clip:
                torch.nn.utils.clip_grad_norm_(method.parameters(), float(s.grad_clip))
            self.opt.step()
            method.after_optimizer_step(ctx)
            if self.ema is not None:
                self.ema.update(method, step=gstep)
            gstep += 1
            loss_sum += out.loss.detach().float()
            for k, v in out.logs.items():
                logs[k] = logs.get(k, 0.0) + torch.as_tensor(v, dtype=torch.float32).detach()
            if out.logits is not None and self.needs.labels:
                y = batch["label"]
                correct += ((out.logits.argmax(1) == y) & (y >= 0)).sum()
                seen += (y >= 0).sum()
        m = {"train/loss": float(loss_sum) / self.steps, "lr": current_lr(self.opt)}
        for k, v in logs.items():
            m[k if "/" in k else f"train/{k}"] = float(v) / self.steps
        if float(seen) > 0:
            m["train/acc"] = float(correct) / float(seen)
        if not self.needs.labels:
            m["mim/loss"] = m["train/loss"]
        return m

    def _state(self, epoch: int) -> dict:
        return {
            "stage": self.name, "stage_index": self.index, "epoch": epoch,
            "global_step": (epoch + 1) * self.steps, "model": self.method.state_dict(),
            "optimizer": self.opt.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "method_state": self.method.method_state(), "best": dict(self.best),
            "history": list(self.logger.history), "encoders": dict(self.encoders),
        }  # fmt: skip

    def run(self) -> dict:
        self._setup()
        s, ckpt_dir = self.s, self.run_dir / "checkpoints"
        stopped, metrics = False, {}
        names = (
            self.train_set.class_names if self.num_classes in (7, 8) else range(self.num_classes)
        )
        first_history = len(self.logger.history)
        for epoch in range(self.start_epoch, int(s.epochs)):
            g = torch.Generator().manual_seed(derive_seed(s.seed, self.index, epoch))
            torch.manual_seed(derive_seed(s.seed, self.index, epoch, 1))
            metrics = self._epoch(epoch, g)
            step = self.step_offset + epoch + 1
            last = epoch + 1 == int(s.epochs)
            if self.needs.labels and ((epoch + 1) % max(1, int(s.eval_every)) == 0 or last):
                val, cm = self.evaluate(self.data.val, "val")
                metrics.update(val)
                self.logger.confusion("val/confusion", cm, names, step)
            metrics.update(self.method.on_epoch_end(epoch))
            sel = s.select_metric if self.needs.labels else "mim/loss"
            if sel in metrics:
                v = metrics[sel] if self.needs.labels else -metrics[sel]
                if v > self.best["value"]:
                    self.best = {"value": float(v), "epoch": epoch}
                    save_checkpoint(self._state(epoch), ckpt_dir / BEST)
                if self.needs.labels:
                    metrics[f"{sel}_best"] = self.best["value"]
            self.logger.epoch(self.name, epoch, metrics, step)
            if type(self.method).log_images is not Method.log_images:  # e.g. MAE's grid
                first = next(eval_batches(self.train_set, 8, self.device, self.channels_last))
                for tag, img in self.method.log_images(first).items():
                    self.logger.image(tag, img, step)
            self._last_state = self._state(epoch)
            if (epoch + 1) % max(1, int(s.save_every)) == 0 or last:
                save_checkpoint(self._last_state, ckpt_dir / LAST)
            if (
                self.callback is not None
                and self.callback(self.name, epoch, dict(metrics), ckpt_dir) is False
            ):
                stopped = True
                break
        final = dict(metrics)
        if self.needs.labels and not stopped:
            final.update(self._test(ckpt_dir, names))
        if self.needs.labels:
            self.logger.hparams(hparam_dict(self.scfg), final)
        return {
            "encoder": self.method.encoder_state_dict(),
            "history": self.logger.history[first_history:],
            "final": final,
            "stopped": stopped,
        }

    def _test(self, ckpt_dir: Path, names) -> dict[str, float]:
        """test/* from the best-validation checkpoint (INTERFACES.md)."""
        best = ckpt_dir / BEST
        if best.is_file():
            st = torch.load(best, map_location="cpu", weights_only=True)
            if int(st.get("stage_index", -1)) == self.index:
                self.method.load_state_dict(st["model"])
                if self.ema is not None and st.get("ema") is not None:
                    self.ema.load_state_dict(st["ema"])
        test, cm = self.evaluate(self.data.test, "test")
        step = self.step_offset + int(self.s.epochs)
        self.logger.scalars(test, step)
        self.logger.confusion("test/confusion", cm, names, step)
        test["best_epoch"] = float(self.best["epoch"])
        return test


def hparam_dict(scfg: dict) -> dict[str, Any]:
    """The stage's knobs as flat ``group.key`` -> value (for TensorBoard's hparams plugin)."""

    def flat(d: dict, prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    return {
        k: v
        for k, v in flat(scfg, "").items()
        if not k.startswith(("trainer.resume", "trainer.run_dir"))
    }
