"""The training loop: ``StageTrainer(plan, ...).run()`` trains one prepared stage.

``engine/recipe.py`` (above this module) prepares each stage of a recipe (method, data, protocol,
hand-off, cache) and runs it here. A stage trains one method (``methods/base.py``): batches from
``engine/batches.py``, timm optimiser + per-update schedule, optional weight EMA (timm
ModelEmaV3), bf16 autocast on CUDA, ``trainer.compile`` (torch.compile of the backbone's
blocks), augmentation on the device (``trainer.aug.device``), evaluation with torchmetrics, TensorBoard + ``metrics.json``
(``engine/logging.py``), ``checkpoints/last.pt`` every epoch and ``best.pt`` at the best value of
the selection metric (``trainer.select_metric``, or the method's ``selection_metric``); ``test/*``
come once from the best checkpoint. Randomness is re-derived from (seed, stage, epoch) at every
epoch start, so resuming from an epoch's checkpoint repeats the uninterrupted run exactly.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fer_core.data.base import DataSplits, FERImageSet, class_names
from fer_core.engine import build
from fer_core.engine.batches import BatchMaker, eval_batches
from fer_core.engine.build import ConfigError, TrainerSettings
from fer_core.engine.checkpoint import BEST, LAST, save_checkpoint
from fer_core.engine.ema import make_ema
from fer_core.engine.logging import RunLogger  # noqa: F401  (re-exported for benchmarks)
from fer_core.engine.metrics import classification_metrics
from fer_core.engine.schedule import current_lr
from fer_core.engine.seed import derive_seed, set_deterministic
from fer_core.methods.base import Method, StepContext, TrainContext

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


@dataclass
class StagePlan:
    """One prepared stage (``engine/recipe.py`` builds it): its method, data and protocol."""

    name: str
    index: int
    scfg: dict
    settings: TrainerSettings
    method: Method  # built, hand-off loaded, frozen where the protocol says
    splits: DataSplits  # val / test come from here
    train: FERImageSet  # what the stage trains on (the labelled part under protocol=semi)
    unlabelled: FERImageSet | None = None
    frozen_backbone: bool = False  # protocol=linear: BatchNorm statistics stay frozen too
    samples: dict[str, torch.Tensor] | None = None  # hand-off per-sample state


class StageTrainer:
    """Trains one prepared stage; ``run()`` -> {"handoff", "history", "final", "stopped"}."""

    def __init__(self, plan: StagePlan, run_dir, logger, on_epoch_end, state, step_offset,
                 handoffs):  # fmt: skip
        self.plan, self.name, self.index, self.scfg = plan, plan.name, plan.index, plan.scfg
        self.run_dir, self.logger, self.callback = Path(run_dir), logger, on_epoch_end
        self.state, self.step_offset, self.handoffs = state, step_offset, handoffs
        self.s = plan.settings

    # ------------------------------------------------------------------ set-up
    def _setup(self) -> None:
        s, plan = self.s, self.plan
        self.device = pick_device(s.device)
        cuda = self.device.type == "cuda"
        if s.threads:
            torch.set_num_threads(int(s.threads))
        if s.deterministic:
            set_deterministic(True)
        self.data, self.train_set = plan.splits, plan.train
        self.num_classes = plan.splits.num_classes
        self.method, self.linear = plan.method, plan.frozen_backbone
        self.method.to(self.device)
        self.channels_last = (s.channels_last is True) or (s.channels_last == "auto" and cuda)
        if self.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.amp = cuda and s.precision in ("auto", "bf16")
        self.needs = self.method.needs  # read from the built method: it may depend on knobs
        self.select, self.mode = selection(self.method, s.select_metric, self.name)
        train = self.train_set
        self.batches = BatchMaker(
            train, self.needs, s.aug, self.device, plan.unlabelled, self.channels_last,
            views=self.method.views, semi=s.semi, aug_on_device=s.aug["device"] == "auto",
        )  # fmt: skip
        bs = int(s.batch_size)
        self.drop_last = len(train) >= bs
        self.steps = len(train) // bs if self.drop_last else 1
        self.method.on_train_start(TrainContext(
            train_set=train, num_classes=self.num_classes, device=self.device,
            iterate_train=lambda b: eval_batches(train, b, self.device, self.channels_last),
            run_dir=self.run_dir,
        ))  # fmt: skip
        if plan.samples:
            self.method.load_method_state(plan.samples)
        self.opt = build.build_optimizer(self.scfg["optim"], self.scfg["sched"], self.method)
        self.sched = build.build_scheduler(self.scfg["sched"], self.opt, s.epochs, self.steps)
        self.ema = make_ema(self.method, s.ema)
        if s.compile:  # after the EMA's deep copy: the copy stays plain (it only evaluates)
            compile_backbones(self.method, s.compile_backend)
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
        unseen = None
        drop = self.scfg.get("data", {}).get("drop_class")
        if drop:  # 003 Table III: low-confidence samples are predicted as the dropped class
            cls = list(class_names(self.num_classes)).index(drop)
            unseen = (cls, float((self.s.eval or {})["unseen_threshold"]))
        return classification_metrics(
            torch.cat(logits), ds.labels, self.num_classes, prefix, ds.true_labels, unseen
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
        self.batches.start_epoch(g)
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
        return m

    def _state(self, epoch: int) -> dict:
        return {
            "stage": self.name, "stage_index": self.index, "epoch": epoch,
            "global_step": (epoch + 1) * self.steps, "model": self.method.state_dict(),
            "optimizer": self.opt.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "method_state": self.method.method_state(), "best": dict(self.best),
            "history": list(self.logger.history), "handoffs": dict(self.handoffs),
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
            sel = self.select
            if sel in metrics:
                v = metrics[sel] if self.mode == "max" else -metrics[sel]
                if v > self.best["value"]:
                    self.best = {"value": float(v), "epoch": epoch}
                    save_checkpoint(self._state(epoch), ckpt_dir / BEST)
                if self.needs.labels:
                    metrics[f"{sel}_best"] = self.best["value"] * (1 if self.mode == "max" else -1)
            self.logger.epoch(self.name, epoch, metrics, step)
            if type(self.method).log_images is not Method.log_images:  # e.g. MAE's grid
                first = next(eval_batches(self.train_set, 8, self.device, self.channels_last))
                for tag, img in self.method.log_images(first).items():
                    self.logger.image(tag, img, step)
            self._last_state = self._state(epoch)
            saved = (epoch + 1) % max(1, int(s.save_every)) == 0 or last
            if saved:
                save_checkpoint(self._last_state, ckpt_dir / LAST)
            # the callback gets the checkpoint dir only when this epoch wrote last.pt (Ray Tune
            # then copies a checkpoint every trainer.save_every epochs, not every epoch)
            if (
                self.callback is not None
                and self.callback(self.name, epoch, dict(metrics), ckpt_dir if saved else None)
                is False
            ):
                stopped = True
                break
        final = dict(metrics)
        if self.needs.labels and not stopped:
            final.update(self._test(ckpt_dir, names))
        if self.needs.labels:
            self.logger.hparams(hparam_dict(self.scfg), final)
        return {
            "handoff": self.method.handoff_state(),  # best-validation weights after _test
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


def compile_backbones(method: torch.nn.Module, backend: str) -> int:
    """``trainer.compile``: ``nn.Module.compile`` (in place, so state-dict keys, checkpoints and
    resume are unchanged) on each block of every backbone's timm model, one by one (a ViT's
    blocks, a ResNet's layers' blocks), so ``features(x, stages=True)`` runs compiled too.
    Without a backbone the whole method's ``forward`` is compiled. Returns the number compiled."""
    from fer_core.models.backbones import Backbone

    n = 0
    for m in method.modules():
        if not isinstance(m, Backbone):
            continue
        for child in m.model.children():
            seq = isinstance(child, (torch.nn.Sequential, torch.nn.ModuleList))
            for part in list(child.children()) if seq else [child]:
                if any(True for _ in part.parameters()):
                    part.compile(backend=backend)
                    n += 1
    if n == 0:
        method.compile(backend=backend)
        n = 1
    return n


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


def selection(method: Method, chosen: str | None, stage: str = "") -> tuple[str, str]:
    """``(metric, mode)`` that picks the best checkpoint: ``trainer.select_metric`` when set (one
    of the method's reported metrics; ``*loss`` metrics are minimised), else the method's own.
    Label-free stages ignore a ``val/`` choice: they have no validation metrics."""
    if not chosen or (chosen.startswith("val/") and not method.needs.labels):
        # a label-free stage has no validation metrics (a study's val/ metric reaches every stage)
        return method.selection_metric, method.selection_mode
    reported = method.reported_metrics()
    if chosen not in reported:
        raise ConfigError(
            f"stage {stage!r}: trainer.select_metric {chosen!r} is not reported by method "
            f"{method.method_name!r}; allowed: {', '.join(reported)}"
        )
    return chosen, "min" if chosen.endswith("loss") else "max"
