"""Named augmentation policies (issue 13/14): ``fer_core/conf/aug/<name>.yaml``, applied per sample.

A policy is an ordered list of ops read from safe YAML (no import paths)::

    ops:
      - {op: random_resized_crop, scale: [0.08, 1.0]}
      - {op: hflip, p: 0.5}

``list_policies()`` names the shipped files; ``load_policy(name) -> Policy``; then
``policy(images uint8 [N, C, H, W], generator, boxes float [N, 4] | None)`` returns
``(float [N, C, H, W] normalised by transforms.normalize, boxes | None)``.

- Every sample gets its own parameters, all drawn from the given ``torch.Generator`` (never the
  global RNG), in an order that does not depend on the pixels: the same generator state gives a
  bit-identical output, and two calls with the generator advancing give two different views.
- Pixels stay float in [0, 255] between ops (no rounding) and are normalised once at the end.
- Face boxes (x1, y1, x2, y2 px) follow every geometric op (pad_crop, random_resized_crop, hflip,
  RandAugment's shear / translate / rotate): the box becomes the bounding box of its moved corners,
  clamped to the image, so after a random resized crop it is the box's intersection with the crop,
  rescaled (zero width/height when the face left the crop). Photometric ops leave boxes alone.
- ``policy(..., warp_only=True)`` applies only the geometric ops (drawing the same numbers), to carry
  a mask or heatmap through the same warp.
- One-channel images: colour jitter reduces to brightness and contrast (saturation and hue are
  no-ops), ``grayscale`` and RandAugment's ``Color`` are no-ops.

Implementation: thin vectorised torch ops (integer indexing for pad_crop as
``transforms.random_crop_flip``, one ``affine_grid`` + ``grid_sample`` per geometric op, masked
sub-batches for per-sample choices). Not torchvision.transforms.v2: one parameter set per batched
call and no generator, so per-sample parameters need a Python loop per image (today's ``strong``
does this for RandAugment). Not kornia 0.9.0 (its wheel installs): it draws from the global RNG (a
save/reseed/restore per call) and adds a dependency for what ~400 lines do. Measured by
``benchmarks/bench_aug.py`` (batch 64, 2 threads, images/s, interleaved repeats; a
quiet run, load ~1.3): 48 px grey: crop_flip 76k vs BatchAugment weak 88k (same ops, same output;
0.87-1.1 across runs), weak (resized crop) 34k, strong 8.2k vs BatchAugment strong 4.1k (x2,
per-image torchvision RandAugment), simclr 19k, erase 50k; 224 px RGB: crop_flip 563 vs 789 (noise:
a direct timing gives 90 vs 110 ms per batch), weak 401, strong 313 vs 468, simclr 231 (float
resampling at 224 px costs; normalisation alone caps any policy at ~1.1k). The tiny CPU models
train at ~500-1,300 img/s at 48 px, so every policy keeps the loader >= 10x ahead there.
``benchmarks/results/aug.md`` holds the last run (on a loaded machine: lower absolute numbers).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
import yaml

from fer_core.data.augment_ops import _OPS, _Bad, _Op
from fer_core.data.transforms import normalize

AUG_DIR = Path(__file__).resolve().parents[1] / "conf" / "aug"
Boxes = torch.Tensor | None


@dataclass(frozen=True)
class Policy:
    """An ordered tuple of ops; ``policy(images, generator, boxes=None, warp_only=False)``."""

    name: str
    ops: tuple[_Op, ...]
    description: str = ""

    @property
    def random(self) -> bool:
        """False for the identity policy (two views of a sample are then identical)."""
        return any(op.random for op in self.ops)

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        boxes: torch.Tensor | None = None,
        warp_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """images uint8 [N, C, H, W], boxes float [N, 4] (x1, y1, x2, y2 px) or None ->
        (normalised float [N, C, H, W], boxes float [N, 4] | None)."""
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"policy {self.name!r} expects uint8 [N, C, H, W] images, got {images.dtype} {tuple(images.shape)}")  # fmt: skip
        if boxes is not None:
            if boxes.shape != (images.shape[0], 4):
                raise ValueError(f"boxes must be [N, 4] = [{images.shape[0]}, 4], got {tuple(boxes.shape)}")  # fmt: skip
            boxes = boxes.to(torch.float32, copy=True)
        x = images  # stays uint8 while the ops are integer moves (pad_crop, hflip)
        for op in self.ops:
            x, boxes = op(x, boxes, generator, warp_only)
        return normalize(x if x.dtype == torch.uint8 else x.clamp(0, 255)), boxes


def list_policies() -> list[str]:
    """The shipped policy names (``fer_core/conf/aug/*.yaml``)."""
    return sorted(p.stem for p in AUG_DIR.glob("*.yaml"))


def _did_you_mean(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(name), allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_policy(spec: Any, name: str, source: str = "<dict>") -> Policy:
    """Build a Policy from a parsed YAML mapping ``{description?, ops: [{op: ..., key: ...}]}``.

    Errors are ``ValueError`` naming ``source``, the op (position and name), the key and what is
    allowed."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("ops"), list):
        raise ValueError(f"{source}: a policy is a mapping with an 'ops' list, got {spec!r}")
    extra = sorted(set(spec) - {"ops", "description"})
    if extra:
        raise ValueError(f"{source}: unknown top-level key(s) {extra}; allowed: ops, description")
    ops = []
    for i, entry in enumerate(spec["ops"]):
        where = f"{source}: ops[{i}]"
        if not isinstance(entry, Mapping) or "op" not in entry:
            raise ValueError(f"{where}: each op is a mapping with an 'op' key, got {entry!r}")
        op = entry["op"]
        allowed_ops = sorted(_OPS)
        if op not in _OPS:
            raise ValueError(f"{where}: unknown op {op!r}{_did_you_mean(op, allowed_ops)}; allowed: {', '.join(allowed_ops)}")  # fmt: skip
        cls = _OPS[op]
        keys = [f.name for f in fields(cls)]
        kwargs = {k: v for k, v in entry.items() if k != "op"}
        for k in kwargs:
            if k not in keys:
                raise ValueError(f"{where} ({op}): unknown key {k!r}{_did_you_mean(k, keys)}; allowed: {', '.join(keys) or 'none'}")  # fmt: skip
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        obj = cls(**kwargs)
        try:
            obj.check()
        except _Bad as e:
            raise ValueError(f"{where} ({op}): {e.key}={getattr(obj, e.key)!r} is invalid; allowed: {e.allowed}") from None  # fmt: skip
        ops.append(obj)
    return Policy(name=name, ops=tuple(ops), description=str(spec.get("description", "")))


def load_policy(name: str, overrides: Mapping[str, Any] | None = None) -> Policy:
    """The policy ``conf/aug/<name>.yaml``; ``overrides`` {"op.key": value} (e.g.
    ``{"rand_augment.m": 5}``) change that key of every op of that name, checked as the file is."""
    allowed = list_policies()
    if name not in allowed:
        raise ValueError(f"unknown augmentation policy {name!r}{_did_you_mean(name, allowed)}; allowed: {', '.join(allowed)}")  # fmt: skip
    path = AUG_DIR / f"{name}.yaml"
    spec = yaml.safe_load(path.read_text())
    for dotted, value in (overrides or {}).items():
        op, _, key = str(dotted).partition(".")
        entries = [e for e in spec.get("ops", []) if isinstance(e, dict) and e.get("op") == op]
        if not key or not entries:
            present = sorted({e.get("op") for e in spec.get("ops", []) if isinstance(e, dict)})
            raise ValueError(f"{path}: override {dotted!r} names no op of this policy; write 'op.key' with op one of: {', '.join(map(str, present)) or 'none'}")  # fmt: skip
        for e in entries:
            e[key] = value
    return parse_policy(spec, name, str(path))
