"""The ops of the augmentation policies (``fer_core/data/augment.py``): vectorised torch ops on
float [N, C, H, W] batches in [0, 255], per-sample parameters drawn from the caller's
``torch.Generator``, boxes following every geometric op. Registered by name in ``_OPS`` (the
``op:`` of a policy file); each op checks its own parameters (``check``) and names the bad key.

Device: the batch may live on the trial's device (``trainer.aug.device: auto``, uint8 moved
before augmenting); every random number is still drawn on the CPU from the caller's generator, in
the same order, and moved to the batch's device where it meets the pixels, so a policy gives the
same draws on every device. Boxes stay on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from fer_core.data.transforms import random_crop_flip

Boxes = torch.Tensor | None
_GREY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


class _Bad(ValueError):
    def __init__(self, key: str, allowed: str) -> None:
        super().__init__(key, allowed)
        self.key, self.allowed = key, allowed


# ---- parameter checks (raise _Bad(key, what is allowed)) --------------------------------------
def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_prob(key: str, v: Any) -> None:
    if not (_num(v) and 0.0 <= v <= 1.0):
        raise _Bad(key, "a number in [0, 1]")


def _check_range(key: str, v: Any, lo: float, hi: float) -> None:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(_num(t) for t in v)):
        raise _Bad(key, f"a pair [low, high] with {lo} <= low <= high <= {hi}")
    if not lo <= v[0] <= v[1] <= hi:
        raise _Bad(key, f"a pair [low, high] with {lo} <= low <= high <= {hi}")


def _check_num(key: str, v: Any, lo: float, hi: float, integer: bool = False) -> None:
    if not (_num(v) and lo <= v <= hi and (not integer or float(v).is_integer())):
        raise _Bad(key, f"{'an integer' if integer else 'a number'} in [{lo}, {hi}]")


# ---- small pixel helpers (x: float [n, C, H, W] in [0, 255]) ----------------------------------
def _u(lo: float, hi: float, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _f(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> a new float tensor (pad_crop and hflip run on uint8 while they come first)."""
    return x.float() if x.dtype == torch.uint8 else x


def _grey(x: torch.Tensor) -> torch.Tensor:
    """[n, 3, H, W] -> [n, 1, H, W] luma (torchvision weights)."""
    return (x * torch.tensor(_GREY, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _blend(x: torch.Tensor, other: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    f = f.to(x.device).view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0, 255)


def _brightness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return (x * f.to(x.device).view(-1, 1, 1, 1)).clamp_(0, 255)


def _contrast(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    luma = _grey(x) if x.shape[1] == 3 else x
    return _blend(x, luma.mean((1, 2, 3), keepdim=True), f)


def _saturation(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    return x if x.shape[1] == 1 else _blend(x, _grey(x), f)


def _hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """RGB -> HSV, h += shift [n] (in turns), -> RGB (torchvision's tensor formulas)."""
    if x.shape[1] == 1:
        return x
    r, gr, b = x.unbind(1)  # the hue is scale-free: stay in [0, 255]
    maxc, minc = x.amax(1), x.amin(1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    crd = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - gr) / crd, (maxc - b) / crd
    h = (maxc == r) * (bc - gc)
    h = h + ((maxc == gr) & (maxc != r)) * (2.0 + rc - bc)
    h = h + ((maxc != gr) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.remainder(h / 6.0 + shift.to(x.device).view(-1, 1, 1), 1.0) * 6.0
    # HSV -> RGB: channel = v - chroma * clamp(min(k, 4 - k), 0, 1), k = (n + 6h) mod 6, n = 5, 3, 1
    k = torch.remainder(
        torch.tensor([5.0, 3.0, 1.0], device=x.device).view(1, 3, 1, 1) + h[:, None], 6.0
    )
    ramp = torch.minimum(k, 4.0 - k).clamp_(0, 1)
    return maxc[:, None] - cr[:, None] * ramp


def _sharpness(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blend with the 3x3 smoothing kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 (PIL's SMOOTH)."""
    box = F.avg_pool2d(x, 3, stride=1) * 9.0
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = (box + 4.0 * x[..., 1:-1, 1:-1]) / 13.0  # borders unchanged
    return _blend(x, degenerate, f)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.amin((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
    scale = torch.where(hi > lo, 255.0 / (hi - lo).clamp(min=1e-6), torch.ones_like(hi))
    return torch.where(hi > lo, (x - lo) * scale, x).clamp(0, 255)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram equalisation (PIL's / torchvision's lookup table)."""
    n, c, h, w = x.shape
    v = x.round().clamp(0, 255).long().view(n * c, h * w)
    hist = torch.zeros(n * c, 256, device=x.device).scatter_add_(
        1, v, torch.ones(n * c, h * w, device=x.device)
    )
    last = hist.gather(1, v.amax(1, keepdim=True))  # count of the highest value present
    step = torch.div(h * w - last, 255, rounding_mode="floor")
    cum = torch.cumsum(hist, 1) - hist  # pixels below each value
    lut = torch.div(cum + torch.div(step, 2, rounding_mode="floor"), step.clamp(min=1), rounding_mode="floor")  # fmt: skip
    out = lut.clamp(0, 255).gather(1, v)
    return torch.where(step > 0, out, v.float()).view(n, c, h, w)


def _warp(x: torch.Tensor, boxes: Boxes, a: torch.Tensor, mode: str, padding: str):
    """Apply forward affine maps ``a`` [n, 3, 3] (input px -> output px, pixel i spans [i, i+1]).

    Output pixels sample the input by ``grid_sample`` (``padding`` zeros = fill 0); boxes become the
    bounding box of their moved corners, clamped to the image.
    """
    n, _, h, w = x.shape
    norm = torch.tensor([[2.0 / w, 0.0, -1.0], [0.0, 2.0 / h, -1.0], [0.0, 0.0, 1.0]])
    theta = (norm @ torch.linalg.inv(a) @ torch.linalg.inv(norm)).to(x.device)  # drawn on the CPU
    grid = F.affine_grid(theta[:, :2], list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)
    if boxes is not None:
        x1, y1, x2, y2 = boxes.unbind(1)
        corners = torch.stack([torch.stack([x1, y1]), torch.stack([x2, y1]), torch.stack([x1, y2]), torch.stack([x2, y2])])  # fmt: skip
        pts = torch.einsum("nij,knj->kni", a[:, :2, :2], corners.permute(0, 2, 1)) + a[:, :2, 2]
        lo, hi = pts.amin(0), pts.amax(0)  # [n, 2]
        size = torch.tensor([w, h], dtype=boxes.dtype)
        boxes = torch.cat([torch.minimum(lo.clamp(min=0), size), torch.minimum(hi.clamp(min=0), size)], 1)  # fmt: skip
    return x, boxes


def _affine(n: int) -> torch.Tensor:
    return torch.eye(3).repeat(n, 1, 1)


def _each(mask: torch.Tensor, x: torch.Tensor, fn) -> torch.Tensor:
    """Apply ``fn(x[idx], idx)`` to the samples where ``mask`` [N] is set (one sub-batch)."""
    idx = mask.nonzero().squeeze(1)
    if len(idx):
        x[idx] = fn(x[idx], idx)  # in place: float tensors inside a policy call are its own
    return x


# ---- ops -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Op:
    geometric: ClassVar[bool] = False
    random: ClassVar[bool] = True

    def check(self) -> None:  # raise _Bad(key, allowed)
        pass

    def __call__(self, x, boxes, g, warp_only):  # -> (x, boxes)
        raise NotImplementedError


_OPS: dict[str, type[_Op]] = {}


def _op(name: str):
    def deco(cls):
        _OPS[name] = cls
        return cls

    return deco


@_op("pad_crop")
@dataclass(frozen=True)
class PadCrop(_Op):
    """Zero-pad ``pad`` px, crop back to H x W at a random offset (``random_crop_flip``'s draws)."""

    pad: int = 4
    geometric: ClassVar[bool] = True

    def check(self) -> None:
        _check_num("pad", self.pad, 0, 1024, integer=True)

    def __call__(self, x, boxes, g, warp_only):
        return random_crop_flip(x, g, int(self.pad), False, boxes)


@_op("hflip")
@dataclass(frozen=True)
class HFlip(_Op):
    p: float = 0.5
    geometric: ClassVar[bool] = True

    def check(self) -> None:
        _check_prob("p", self.p)

    def __call__(self, x, boxes, g, warp_only):
        f = torch.rand(x.shape[0], generator=g) < self.p
        x = torch.where(f.to(x.device)[:, None, None, None], x.flip(-1), x)
        if boxes is not None:
            w = x.shape[-1]
            flipped = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], 1)
            boxes = torch.where(f[:, None], flipped, boxes)
        return x, boxes


@_op("random_resized_crop")
@dataclass(frozen=True)
class RandomResizedCrop(_Op):
    """torchvision's RandomResizedCrop (10 tries, then a central crop), resized back to H x W."""

    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    geometric: ClassVar[bool] = True

    def check(self) -> None:
        _check_range("scale", self.scale, 1e-6, 1.0)
        _check_range("ratio", self.ratio, 1e-3, 1e3)

    def __call__(self, x, boxes, g, warp_only):
        x = _f(x)
        n, _, h, w = x.shape
        area = _u(*self.scale, (n, 10), g) * (h * w)
        r = torch.exp(_u(math.log(self.ratio[0]), math.log(self.ratio[1]), (n, 10), g))
        cw, ch = torch.sqrt(area * r).round(), torch.sqrt(area / r).round()
        ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
        first = ok.float().argmax(1, keepdim=True)
        in_r, (rlo, rhi) = w / h, self.ratio  # fallback: torchvision's central crop
        fw, fh = (
            (w, round(w / rlo)) if in_r < rlo else (round(h * rhi), h) if in_r > rhi else (w, h)
        )
        any_ok = ok.any(1)
        cw = torch.where(any_ok, cw.gather(1, first).squeeze(1), torch.tensor(float(fw)))
        ch = torch.where(any_ok, ch.gather(1, first).squeeze(1), torch.tensor(float(fh)))
        off = torch.rand(n, 2, generator=g)
        top = torch.where(any_ok, torch.floor(off[:, 0] * (h - ch + 1)), (h - ch) // 2)
        left = torch.where(any_ok, torch.floor(off[:, 1] * (w - cw + 1)), (w - cw) // 2)
        a = _affine(n)
        a[:, 0, 0], a[:, 0, 2] = w / cw, -left * w / cw
        a[:, 1, 1], a[:, 1, 2] = h / ch, -top * h / ch
        return _warp(x, boxes, a, "bilinear", "border")


@_op("color_jitter")
@dataclass(frozen=True)
class ColorJitter(_Op):
    """torchvision's ColorJitter, applied with probability ``p``, in a random order per sample."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    p: float = 0.8

    def check(self) -> None:
        for k in ("brightness", "contrast", "saturation"):
            _check_num(k, getattr(self, k), 0, 1e3)
        _check_num("hue", self.hue, 0, 0.5)
        _check_prob("p", self.p)

    def __call__(self, x, boxes, g, warp_only):
        x = _f(x)
        n = x.shape[0]
        on = torch.rand(n, generator=g) < self.p
        order = torch.argsort(torch.rand(n, 4, generator=g), 1)
        b, c, s = (_u(max(0.0, 1 - v), 1 + v, (n,), g) for v in (self.brightness, self.contrast, self.saturation))  # fmt: skip
        hue = _u(-self.hue, self.hue, (n,), g)
        if warp_only:
            return x, boxes
        fns = [
            (self.brightness > 0, lambda t, i: _brightness(t, b[i])),
            (self.contrast > 0, lambda t, i: _contrast(t, c[i])),
            (self.saturation > 0 and x.shape[1] == 3, lambda t, i: _saturation(t, s[i])),
            (self.hue > 0 and x.shape[1] == 3, lambda t, i: _hue(t, hue[i])),
        ]
        for pos in range(4):
            for k, (active, fn) in enumerate(fns):
                if active:
                    x = _each(on & (order[:, pos] == k), x, fn)
        return x, boxes


@_op("grayscale")
@dataclass(frozen=True)
class Grayscale(_Op):
    """RandomGrayscale: luma copied to the 3 channels with probability ``p`` (1 channel: no-op)."""

    p: float = 0.2

    def check(self) -> None:
        _check_prob("p", self.p)

    def __call__(self, x, boxes, g, warp_only):
        x = _f(x)
        on = torch.rand(x.shape[0], generator=g) < self.p
        if warp_only or x.shape[1] == 1:
            return x, boxes
        return torch.where(on.to(x.device)[:, None, None, None], _grey(x).expand_as(x), x), boxes


@_op("gaussian_blur")
@dataclass(frozen=True)
class GaussianBlur(_Op):
    """Gaussian blur with probability ``p``, sigma ~ U(sigma), kernel = odd ~``kernel_frac`` of H."""

    p: float = 0.5
    sigma: tuple[float, float] = (0.1, 2.0)
    kernel_frac: float = 0.1

    def check(self) -> None:
        _check_prob("p", self.p)
        _check_range("sigma", self.sigma, 1e-3, 1e3)
        _check_num("kernel_frac", self.kernel_frac, 0, 1)

    def __call__(self, x, boxes, g, warp_only):
        x = _f(x)
        n, c, h, w = x.shape
        on = torch.rand(n, generator=g) < self.p
        sig = _u(*self.sigma, (n,), g)
        radius = min(
            int(self.kernel_frac * h) // 2, (min(h, w) - 1) // 2
        )  # SimCLR: k = 2 (H//20) + 1
        if warp_only or radius < 1:
            return x, boxes

        def blur(t, i):
            m = len(i)
            k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1.0) / sig[i, None]) ** 2)
            k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0).to(t.device)  # [m*c, 2r+1]
            t = F.pad(t.reshape(1, m * c, h, w), (radius,) * 4, mode="reflect")
            t = F.conv2d(t, k.view(m * c, 1, -1, 1), groups=m * c)
            t = F.conv2d(t, k.view(m * c, 1, 1, -1), groups=m * c)
            return t.view(m, c, h, w)

        return _each(on, x, blur), boxes


@_op("random_erasing")
@dataclass(frozen=True)
class RandomErasing(_Op):
    """torchvision's RandomErasing (10 tries, else nothing); ``value`` in pixels (127.5 = 0 after
    normalisation, what RandomErasing(value=0) writes after Normalize)."""

    p: float = 0.5
    scale: tuple[float, float] = (0.02, 0.33)
    ratio: tuple[float, float] = (0.3, 3.3)
    value: float = 127.5

    def check(self) -> None:
        _check_prob("p", self.p)
        _check_range("scale", self.scale, 0.0, 1.0)
        _check_range("ratio", self.ratio, 1e-3, 1e3)
        _check_num("value", self.value, 0, 255)

    def __call__(self, x, boxes, g, warp_only):
        x = _f(x)
        n, _, h, w = x.shape
        on = torch.rand(n, generator=g) < self.p
        area = _u(*self.scale, (n, 10), g) * (h * w)
        r = torch.exp(_u(math.log(self.ratio[0]), math.log(self.ratio[1]), (n, 10), g))
        eh, ew = torch.sqrt(area * r).round(), torch.sqrt(area / r).round()
        ok = (eh < h) & (ew < w) & (eh > 0) & (ew > 0)
        first = ok.float().argmax(1, keepdim=True)
        eh, ew = eh.gather(1, first).squeeze(1), ew.gather(1, first).squeeze(1)
        off = torch.rand(n, 2, generator=g)
        top, left = torch.floor(off[:, 0] * (h - eh + 1)), torch.floor(off[:, 1] * (w - ew + 1))
        if warp_only:
            return x, boxes
        on = on & ok.any(1)
        ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
        rect = (ys >= top.view(-1, 1, 1)) & (ys < (top + eh).view(-1, 1, 1))
        rect = rect & (xs >= left.view(-1, 1, 1)) & (xs < (left + ew).view(-1, 1, 1))
        erase = (rect & on.view(-1, 1, 1))[:, None].to(x.device)
        return torch.where(erase, float(self.value), x), boxes


# RandAugment (Cubuk et al. 2020) with torchvision v2's op list and magnitude bins
_RA_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
           "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")  # fmt: skip
_RA_GEOMETRIC = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}


@_op("rand_augment")
@dataclass(frozen=True)
class RandAugment(_Op):
    """``n`` ops per sample, each chosen per sample, magnitude bin ``m`` of ``bins``, random sign.

    Shear / translate / rotate use ``interpolation`` (torchvision's default: nearest), fill 0,
    and move the boxes."""

    n: int = 2
    m: int = 9
    bins: int = 31
    interpolation: str = "nearest"
    geometric: ClassVar[bool] = True

    def check(self) -> None:
        _check_num("n", self.n, 0, 16, integer=True)
        _check_num("bins", self.bins, 2, 1000, integer=True)
        _check_num("m", self.m, 0, self.bins - 1, integer=True)
        if self.interpolation not in ("nearest", "bilinear"):
            raise _Bad("interpolation", "nearest or bilinear")

    def _mag(self, op: str, h: int, w: int) -> float:
        frac = self.m / (self.bins - 1)
        return {"ShearX": 0.3, "ShearY": 0.3, "TranslateX": 150 / 331 * w, "TranslateY": 150 / 331 * h,
                "Rotate": 30.0, "Brightness": 0.9, "Color": 0.9, "Contrast": 0.9,
                "Sharpness": 0.9}.get(op, 0.0) * frac  # fmt: skip

    def __call__(self, x, boxes, g, warp_only):
        x = _f(x)
        n, _, h, w = x.shape
        for _ in range(int(self.n)):
            choice = torch.randint(0, len(_RA_OPS), (n,), generator=g)
            sign = torch.where(torch.rand(n, generator=g) <= 0.5, -1.0, 1.0)
            for k, op in enumerate(_RA_OPS):
                idx = (choice == k).nonzero().squeeze(1)
                if op == "Identity" or not len(idx) or (warp_only and op not in _RA_GEOMETRIC):
                    continue
                mag = self._mag(op, h, w) * sign[idx]
                if op in _RA_GEOMETRIC:
                    a = _affine(len(idx))
                    if op == "ShearX":
                        a[:, 0, 1] = mag
                    elif op == "ShearY":
                        a[:, 1, 0] = mag
                    elif op == "TranslateX":
                        a[:, 0, 2] = mag.trunc()
                    elif op == "TranslateY":
                        a[:, 1, 2] = mag.trunc()
                    else:  # rotate about the centre, counter-clockwise for positive angles
                        cos, sin = torch.cos(torch.deg2rad(mag)), torch.sin(torch.deg2rad(mag))
                        a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = cos, sin, -sin, cos
                        a[:, 0, 2] = w / 2 - cos * w / 2 - sin * h / 2
                        a[:, 1, 2] = h / 2 + sin * w / 2 - cos * h / 2
                    sub_boxes = boxes[idx] if boxes is not None else None
                    out, sub_boxes = _warp(x[idx], sub_boxes, a, self.interpolation, "zeros")
                    if boxes is not None:
                        boxes[idx] = sub_boxes
                else:
                    out = self._photometric(op, x[idx], mag)
                x[idx] = out
        return x, boxes

    def _photometric(self, op: str, t: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        if op == "Brightness":
            return _brightness(t, 1 + mag)
        if op == "Color":
            return _saturation(t, 1 + mag)
        if op == "Contrast":
            return _contrast(t, 1 + mag)
        if op == "Sharpness":
            return _sharpness(t, 1 + mag)
        if op == "Posterize":
            bits = 8 - int(round(self.m / ((self.bins - 1) / 4)))
            q = 2.0 ** (8 - bits)
            return torch.floor(t.round() / q) * q
        if op == "Solarize":
            thr = 255.0 * (1.0 - self.m / (self.bins - 1))
            return torch.where(t >= thr, 255.0 - t, t)
        if op == "AutoContrast":
            return _autocontrast(t)
        return _equalize(t)


# ---- policies --------------------------------------------------------------------------------
