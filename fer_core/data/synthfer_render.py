"""Vectorised torch drawing of SynthFER faces (the pixels; the labels are in ``synthfer.py``).

A face lives in a local frame: ``u`` right, ``v`` down, the face an ellipse of semi-axes
(0.78, 0.95) around the origin. Every pixel of a batch is mapped into its sample's local frame
(translation, scale, in-plane rotation, a horizontal squeeze for head turn), every part is a
soft-edged shape evaluated on that grid, and the parts are alpha-composited back to front.
Everything is batched tensor arithmetic: no Python loop over samples or pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Action-unit-like expression dimensions (columns of the expression vector).
AU_NAMES: tuple[str, ...] = (
    "brow_raise",
    "brow_furrow",
    "eye_open",
    "nose_wrinkle",
    "lip_corner",
    "mouth_open",
    "lip_stretch",
    "one_sided",
)
FACE_A, FACE_B = 0.78, 0.95  # face ellipse semi-axes in local units


def _u(g: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g)


def _soft(d: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """alpha = sigmoid(d / soft), d > 0 inside (a signed distance in local units)."""
    return torch.sigmoid(d / soft)


def _ellipse(u, v, u0, v0, a, b, soft):
    d = torch.sqrt(((u - u0) / a) ** 2 + ((v - v0) / b) ** 2 + 1e-12)
    return _soft((1.0 - d) * torch.minimum(a, b), soft)


def _segment(u, v, u0, v0, u1, v1, thick, soft):
    du, dv = u1 - u0, v1 - v0
    t = (((u - u0) * du + (v - v0) * dv) / (du * du + dv * dv + 1e-9)).clamp(0, 1)
    dist = torch.sqrt((u - u0 - t * du) ** 2 + (v - v0 - t * dv) ** 2 + 1e-12)
    return _soft(thick - dist, soft)


_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _over(canvas: torch.Tensor, alpha: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """Composite ``color`` [B, C, 1, 1] with ``alpha`` [B, 1, H, W] over ``canvas`` [B, C, H, W] (in place)."""
    return canvas.lerp_(color.expand_as(canvas), alpha.expand_as(canvas))


def _col(x: torch.Tensor, channels: int) -> torch.Tensor:
    """[B] grey or [B, 3] RGB -> [B, channels, 1, 1] colour (RGB -> luma for one channel)."""
    if x.dim() == 1:
        x = x[:, None].expand(-1, channels)
    elif channels == 1:
        x = (x @ _LUMA)[:, None]
    return x[:, :, None, None]


def render_faces(
    expr: torch.Tensor,
    occluder: torch.Tensor,
    size: int,
    g: torch.Generator,
    channels: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one face per expression vector.

    Args:
        expr: [B, 8] expression (AU_NAMES order; about [-1, 1.2]).
        occluder: [B] long, 0 none, 1 bar over the eyes, 2 bar over the mouth.
        size: output height = width in pixels.
        g: generator for every nuisance draw (pose, colours, clutter, lighting, noise).
        channels: 3 (RGB) or 1 (luma); both make the same random draws.
    Returns:
        images: float [B, channels, size, size] in [0, 1]; boxes: float [B, 4] exact face box
        (x1, y1, x2, y2 in pixels, clipped to the image).
    """
    B = expr.shape[0]
    e = expr.clamp(-1.0, 1.2)
    br, bf, eo, nw, lc, mo, ls, os_ = (e[:, i].view(B, 1, 1) for i in range(8))

    # ---- pose: centre, scale (px per local unit), rotation, squeeze (head turn) ----
    R = size * _u(g, (B,), 0.33, 0.42)
    cx = size * (0.5 + _u(g, (B,), -0.08, 0.08))
    cy = size * (0.5 + _u(g, (B,), -0.07, 0.07))
    theta = _u(g, (B,), -1.0, 1.0) * math.radians(15)
    sx = _u(g, (B,), 0.75, 1.0)
    turn = torch.where(torch.rand(B, generator=g) < 0.5, -1.0, 1.0) * (1.0 - sx) * 0.7
    gaze = _u(g, (B, 2), -0.03, 0.03)

    xs = torch.arange(size, dtype=torch.float32) + 0.5
    dx = xs.view(1, 1, size) - cx.view(B, 1, 1)
    dy = xs.view(1, size, 1) - cy.view(B, 1, 1)
    c, s = torch.cos(theta).view(B, 1, 1), torch.sin(theta).view(B, 1, 1)
    u = (c * dx + s * dy) / (R * sx).view(B, 1, 1)  # [B, H, W]
    v = (-s * dx + c * dy) / R.view(B, 1, 1)
    soft = (0.6 / R).view(B, 1, 1)  # ~0.6 px edge
    du = turn.view(B, 1, 1)

    # ---- colours ----
    tone = _u(g, (B,), 0.45, 0.85)
    skin = torch.stack([tone, tone * _u(g, (B,), 0.78, 0.9), tone * _u(g, (B,), 0.62, 0.78)], 1)
    hair = _u(g, (B,), 0.05, 0.45)[:, None] * torch.tensor([1.0, 0.85, 0.7])
    dark = _u(g, (B,), 0.03, 0.15)
    white = _u(g, (B,), 0.8, 0.97)
    lips = skin * torch.tensor([0.6, 0.35, 0.35])
    brow = _u(g, (B,), 0.03, 0.25)[:, None] * torch.tensor([1.0, 0.85, 0.7])

    # ---- background: low-frequency noise + clutter rectangles ----
    low = torch.rand(B, 3, 5, 5, generator=g)
    if channels == 1:
        low = torch.einsum("bchw,c->bhw", low, _LUMA).unsqueeze(1)
    low = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    bg_gray = _u(g, (B, 1), 0.1, 0.9)
    bg_mean = _col((bg_gray + 0.35 * (_u(g, (B, 3), 0.0, 1.0) - 0.5)).clamp(0, 1), channels)
    canvas = (bg_mean + 0.5 * (low - 0.5)).clamp(0, 1).contiguous()
    X = xs.view(1, 1, 1, size)
    Y = xs.view(1, 1, size, 1)
    for _ in range(3):
        x0, y0 = _u(g, (B,), -0.1, 1.0) * size, _u(g, (B,), -0.1, 1.0) * size
        w, h = _u(g, (B,), 0.05, 0.4) * size, _u(g, (B,), 0.05, 0.4) * size
        inside = (
            torch.sigmoid((X - x0.view(B, 1, 1, 1)) / 0.6)
            * torch.sigmoid((x0.view(B, 1, 1, 1) + w.view(B, 1, 1, 1) - X) / 0.6)
            * torch.sigmoid((Y - y0.view(B, 1, 1, 1)) / 0.6)
            * torch.sigmoid((y0.view(B, 1, 1, 1) + h.view(B, 1, 1, 1) - Y) / 0.6)
        )
        canvas = _over(
            canvas, inside * _u(g, (B, 1, 1, 1), 0.3, 0.9), _col(_u(g, (B, 3), 0.0, 1.0), channels)
        )

    def A(x: torch.Tensor) -> torch.Tensor:  # [B, H, W] -> [B, 1, H, W]
        return x.unsqueeze(1)

    def draw(canvas, alpha, color):
        return _over(canvas, A(alpha), _col(color, channels))

    one = torch.ones(B, 1, 1)
    # ---- face, hair ----
    face = _ellipse(u, v, 0.0, 0.0, FACE_A * one, FACE_B * one, soft)
    canvas = draw(canvas, face, skin)
    hair_line = -0.76 + 0.08 * torch.rand(B, 1, 1, generator=g)
    has_hair = (torch.rand(B, 1, 1, generator=g) < 0.8).float()
    hair_a = (
        _ellipse(u, v, 0.0, -0.02, 0.84 * one, 1.02 * one, soft)
        * _soft(hair_line - v, soft)
        * has_hair
    )
    canvas = draw(canvas, hair_a, hair)

    # ---- nose (bridge, nostrils), wrinkles and folds ----
    canvas = draw(canvas, 0.5 * _segment(u, v, du, -0.1, du + 0.03, 0.2, 0.022, soft), skin * 0.6)
    for side in (-1.0, 1.0):
        nx = du + side * 0.07 * (1 + 0.35 * nw.clamp(min=0))
        canvas = draw(
            canvas, _ellipse(u, v, nx, 0.25 * one, 0.04 * one, 0.025 * one, soft), skin * 0.35
        )
        wr = nw.clamp(0, 1)
        canvas = draw(
            canvas,
            wr * _segment(u, v, du + side * 0.05, -0.06, du + side * 0.13, -0.01, 0.02, soft),
            skin * 0.45,
        )
        fold = (0.8 * nw + 0.4 * lc).clamp(0, 1)
        canvas = draw(
            canvas,
            fold * _segment(u, v, du + side * 0.13, 0.28, du + side * 0.25, 0.45, 0.02, soft),
            skin * 0.6,
        )

    # ---- eyes and pupils ----
    eye_b = (0.065 * (1 + 0.9 * eo)).clamp(min=0.012)
    for side in (-1.0, 1.0):
        ex = du + side * 0.3
        outline = _ellipse(u, v, ex, -0.18 * one, 0.17 * one, eye_b + 0.025, soft)
        canvas = draw(canvas, outline, dark)
        eye = _ellipse(u, v, ex, -0.18 * one, 0.15 * one, eye_b, soft)
        canvas = draw(canvas, eye, white)
        pupil = _ellipse(
            u,
            v,
            ex + gaze[:, 0].view(B, 1, 1),
            -0.18 + gaze[:, 1].view(B, 1, 1),
            0.055 * one,
            0.055 * one,
            soft,
        )
        canvas = draw(canvas, pupil * eye, dark)

    # ---- brows: raise lifts them (inner ends more), furrow pulls inner ends down and in ----
    base = -0.44
    for side in (-1.0, 1.0):
        ui = du + side * (0.1 - 0.04 * bf)
        vi = base - 0.16 * br + 0.11 * bf
        uo = du + side * 0.48
        vo = base - 0.09 * br - 0.03 * bf
        canvas = draw(canvas, _segment(u, v, ui, vi, uo, vo, 0.05, soft), brow)

    # ---- mouth: lip line bent by the corners, opened by mouth_open, widened by stretch ----
    w = 0.26 * (1 + 0.4 * ls).clamp(min=0.6)
    t = (u - du) / w
    dyl = -0.17 * lc
    dyr = -0.17 * (lc + os_)
    vmid = 0.52 + torch.where(t > 0, dyr, dyl) * t * t
    half = 0.022 + 0.11 * mo.clamp(min=0) * (1 - t * t).clamp(min=0)
    inside_w = _soft((1 - t.abs()) * w, soft)
    lip = _soft(half + 0.02 - (v - vmid).abs(), soft) * inside_w
    canvas = draw(canvas, lip, lips)
    hole = _soft(half - 0.012 - (v - vmid).abs(), soft) * inside_w * (mo > 0.05).float()
    canvas = draw(canvas, hole, dark)

    # ---- occluders: an opaque bar over the eyes or the mouth (in the face frame) ----
    bar_v = torch.where(occluder == 1, -0.18, 0.52).view(B, 1, 1)
    bar = (
        _soft(0.14 - (v - bar_v).abs(), soft)
        * _soft(0.75 - u.abs(), soft)
        * (occluder > 0).view(B, 1, 1).float()
    )
    canvas = draw(canvas, bar, _u(g, (B, 3), 0.0, 1.0))

    # ---- lighting gradient, contrast / brightness, pixel noise ----
    phi = _u(g, (B,), 0.0, 2 * math.pi).view(B, 1, 1, 1)
    xn, yn = X / size - 0.5, Y / size - 0.5
    light = 1.0 + _u(g, (B, 1, 1, 1), 0.0, 0.5) * (torch.cos(phi) * xn + torch.sin(phi) * yn)
    contrast = _u(g, (B, 1, 1, 1), 0.75, 1.15)
    bright = _u(g, (B, 1, 1, 1), -0.12, 0.12)
    canvas = (canvas * light - 0.5) * contrast + (0.5 + bright)
    sigma = _u(g, (B, 1, 1, 1), 0.005, 0.04)
    canvas = canvas + sigma * torch.randn(canvas.shape, generator=g)

    # ---- exact face box: bounding box of the rotated, squeezed face ellipse ----
    a_px, b_px = FACE_A * R * sx, FACE_B * R
    hw = torch.sqrt((a_px * torch.cos(theta)) ** 2 + (b_px * torch.sin(theta)) ** 2)
    hh = torch.sqrt((a_px * torch.sin(theta)) ** 2 + (b_px * torch.cos(theta)) ** 2)
    boxes = torch.stack([cx - hw, cy - hh, cx + hw, cy + hh], 1).clamp(0, size)
    return canvas.clamp(0, 1), boxes
