"""Run logging: TensorBoard events (INTERFACES.md metric names, ``lr``, hparams, confusion matrix
images) and ``metrics.json`` (``{"history": [...], "final": {...}}``, rewritten atomically)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch


def confusion_image(cm: torch.Tensor, class_names: tuple[str, ...] | list[str]) -> torch.Tensor:
    """Row-normalised confusion matrix [C, C] -> an RGB image float [3, H, W] in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    m = cm.float()
    m = m / m.sum(dim=1, keepdim=True).clamp(min=1)
    n = m.shape[0]
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 1.0 + 0.5 * n), dpi=80)
    ax.imshow(m.numpy(), cmap="Blues", vmin=0, vmax=1)
    names = list(class_names)[:n]
    ax.set_xticks(range(n), names, rotation=60, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    for i in range(n):
        for j in range(n):
            v = float(m[i, j])
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if v > 0.5 else "black")  # fmt: skip
    fig.tight_layout()
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return torch.from_numpy(img).permute(2, 0, 1).float() / 255.0


def _hparam_value(v: Any) -> int | float | str | bool:
    if isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


class RunLogger:
    """TensorBoard writer + metrics.json of one run directory."""

    def __init__(
        self, run_dir: Path, history: list[dict] | None = None, purge_step: int | None = None
    ):
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge_step)
        self.history: list[dict] = list(history or [])
        self.final: dict[str, float] = {}

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and math.isfinite(float(v)):
                self.writer.add_scalar(k, float(v), step)

    def epoch(self, stage: str, epoch: int, metrics: dict[str, float], step: int) -> None:
        """Log one epoch's metrics (TensorBoard at ``step``) and append them to the history."""
        self.scalars(metrics, step)
        self.history.append({"stage": stage, "epoch": epoch, **metrics})
        self.write_json()

    def image(self, tag: str, img: torch.Tensor, step: int) -> None:
        self.writer.add_image(tag, img.clamp(0, 1), step)

    def confusion(self, tag: str, cm: torch.Tensor, names, step: int) -> None:
        self.image(tag, confusion_image(cm, names), step)

    def hparams(self, params: dict[str, Any], metrics: dict[str, float]) -> None:
        """hparams plugin data in this run's own event file (no extra sub-run)."""
        from torch.utils.tensorboard.summary import hparams

        clean = {k: _hparam_value(v) for k, v in params.items()}
        mets = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        exp, ssi, sei = hparams(clean, mets)
        fw = self.writer._get_file_writer()
        for s in (exp, ssi, sei):
            fw.add_summary(s)

    def write_json(self) -> None:
        path = self.run_dir / "metrics.json"
        tmp = path.with_suffix(f".json.tmp{os.getpid()}")
        tmp.write_text(json.dumps({"history": self.history, "final": self.final}, indent=1))
        os.replace(tmp, path)

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()
