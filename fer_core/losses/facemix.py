"""FaceMix: Mixup whose real-sample loss terms are weighted by kappa (004 SSFER, Sec. 3.4, Eq. 6-14).

A virtual sample mixes two real ones, ``x~ = lam x_i + (1 - lam) x_j``, ``y~ = lam y_i + (1 - lam)
y_j`` (Eq. 6), ``lam ~ Beta(alpha, alpha)``. The loss combines three per-sample cross-entropies:

- ``L_v``: soft-target cross-entropy of the prediction on ``x~`` against ``y~`` (Eq. 7);
- ``L_i``, ``L_j``: plain cross-entropy of the predictions on the *unmixed* ``x_i`` and ``x_j``
  (Eq. 10; the authors' public code mixes the batch in place, so its "unmixed" terms see mixed
  images: the project follows the paper and never mixes in place);

weighted by ``kappa`` in one of four forms (Eq. 11-14; Table 15, L4 is the paper's FaceMix loss,
Eq. 10 = Eq. 14)::

    L1 = (1 - kappa) L_v + L_i + L_j        L2 = L_v + (1 - kappa)(L_i + L_j)
    L3 = kappa L_v + L_i + L_j              L4 = L_v + kappa (L_i + L_j)

``kappa`` is per pair, in [0, 1], and never differentiated through. How each metric (Table 14)
becomes a weight in [0, 1] (the paper gives only Eq. 9 for IoU; the others follow the same reading
"kappa = 1 - similarity of the two faces"):

- ``iou``: ``kappa = 1 - IoU(B_i, B_j)`` of the two face boxes (Eq. 8-9; torchvision's
  ``box_iou``). Identical boxes give 0, disjoint boxes 1.
- ``psnr``: ``kappa = 1 - min(PSNR, PSNR_CAP_DB) / PSNR_CAP_DB`` with PSNR in dB of the two images
  in [0, 1] (torchmetrics) and ``PSNR_CAP_DB = 40`` (the usual "visually identical" level for
  8-bit images); identical images (PSNR = inf) give 0, PSNR <= 0 dB gives 1.
- ``ssim``: ``kappa = 1 - clamp(SSIM, 0, 1)`` (torchmetrics, Gaussian 11 x 11 window, sigma 1.5);
  SSIM lies in [-1, 1], negative (anti-correlated) structure counts as no similarity.
- ``fsim``: ``kappa = 1 - FSIM`` (piq; FSIM lies in (0, 1]; the colour variant FSIMc for 3
  channels, FSIM on luminance for 1).
- ``none``: ``kappa = 1``: the real-sample terms enter unweighted (no metric), the control of the
  kappa ablation. (Plain Mixup, no real-sample terms, is the method's ``facemix.enabled=mixup``.)

Reference value G (design notes): IoU of [25, 25, 220, 220] and [40, 30, 200, 210] = 0.7573964.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

KAPPAS = ("iou", "psnr", "ssim", "fsim", "none")
LOSS_FORMS = ("L1", "L2", "L3", "L4")
PSNR_CAP_DB = 40.0  # PSNR (dB) at and above which two images count as identical (kappa = 0)


def check_kappa(kappa: str) -> None:
    if kappa not in KAPPAS:
        raise ValueError(f"facemix.kappa must be one of {', '.join(KAPPAS)}, got {kappa!r}")


def check_loss_form(form: str) -> None:
    if form not in LOSS_FORMS:
        raise ValueError(
            f"facemix.loss must be one of {', '.join(LOSS_FORMS)} (004 Eq. 11-14), got {form!r}"
        )


def check_alpha(alpha: float) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(
            f"facemix.alpha must be a number > 0 (lam ~ Beta(alpha, alpha)), got {alpha!r}"
        )


# ----------------------------------------------------------------------------- kappa metrics
def iou_kappa(boxes_i: torch.Tensor, boxes_j: torch.Tensor) -> torch.Tensor:
    """``1 - IoU(B_i, B_j)`` per pair (Eq. 8-9). boxes float [N, 4] (x1, y1, x2, y2) -> [N]."""
    if boxes_i.shape != boxes_j.shape or boxes_i.dim() != 2 or boxes_i.shape[1] != 4:
        raise ValueError(
            f"boxes must both be [N, 4], got {tuple(boxes_i.shape)} and {tuple(boxes_j.shape)}"
        )
    iou = box_iou(boxes_i.float(), boxes_j.float()).diagonal()
    return (1.0 - iou).clamp(0.0, 1.0)


def _check_images(x_i: torch.Tensor, x_j: torch.Tensor) -> None:
    if x_i.shape != x_j.shape or x_i.dim() != 4:
        raise ValueError(
            f"images must both be [N, C, H, W] in [0, 1], got {tuple(x_i.shape)} and "
            f"{tuple(x_j.shape)}"
        )


def psnr_kappa(x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
    """``1 - min(PSNR, 40 dB) / 40 dB`` per pair; images float [N, C, H, W] in [0, 1] -> [N]."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    _check_images(x_i, x_j)
    psnr = peak_signal_noise_ratio(
        x_i.float(), x_j.float(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    psnr = torch.nan_to_num(psnr, nan=PSNR_CAP_DB, posinf=PSNR_CAP_DB)  # identical images: inf
    return 1.0 - psnr.clamp(0.0, PSNR_CAP_DB) / PSNR_CAP_DB


def ssim_kappa(x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
    """``1 - clamp(SSIM, 0, 1)`` per pair; images float [N, C, H, W] in [0, 1] -> [N]."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_images(x_i, x_j)
    ssim = structural_similarity_index_measure(
        x_i.float(), x_j.float(), data_range=1.0, reduction="none"
    )
    return 1.0 - ssim.clamp(0.0, 1.0)


def fsim_kappa(x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
    """``1 - FSIM`` per pair (FSIMc for 3 channels); images float [N, C, H, W] in [0, 1] -> [N]."""
    import piq

    _check_images(x_i, x_j)
    fsim = piq.fsim(
        x_i.float().clamp(0, 1),
        x_j.float().clamp(0, 1),
        reduction="none",
        data_range=1.0,
        chromatic=x_i.shape[1] == 3,
    )
    return (1.0 - fsim).clamp(0.0, 1.0)


@torch.no_grad()
def compute_kappa(
    kind: str,
    *,
    boxes_i: torch.Tensor | None = None,
    boxes_j: torch.Tensor | None = None,
    x_i: torch.Tensor | None = None,
    x_j: torch.Tensor | None = None,
    n: int | None = None,
) -> torch.Tensor:
    """kappa per pair for ``kind`` (module docstring): float [N] in [0, 1], no gradient.

    ``iou`` needs the boxes, ``psnr``/``ssim``/``fsim`` the images in [0, 1], ``none`` only ``n``.
    """
    check_kappa(kind)
    if kind == "iou":
        if boxes_i is None or boxes_j is None:
            raise ValueError("facemix.kappa=iou needs the face boxes of both images")
        return iou_kappa(boxes_i, boxes_j)
    if kind == "none":
        if n is None:
            n = (x_i if x_i is not None else boxes_i).shape[0]
        return torch.ones(n)
    if x_i is None or x_j is None:
        raise ValueError(f"facemix.kappa={kind} needs both images")
    return {"psnr": psnr_kappa, "ssim": ssim_kappa, "fsim": fsim_kappa}[kind](x_i, x_j)


# ----------------------------------------------------------------------------- the loss
def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Eq. 7 per sample: ``-sum_k y~_k log p_k``. logits, target [N, K] -> [N]."""
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1)


def combine(
    form: str,
    loss_v: torch.Tensor,
    loss_i: torch.Tensor,
    loss_j: torch.Tensor,
    kappa: torch.Tensor,
) -> torch.Tensor:
    """Eq. 11-14 per sample: all arguments [N] (kappa is detached) -> [N]."""
    check_loss_form(form)
    k = kappa.detach().to(loss_v)
    real = loss_i + loss_j
    if form == "L1":
        return (1.0 - k) * loss_v + real
    if form == "L2":
        return loss_v + (1.0 - k) * real
    if form == "L3":
        return k * loss_v + real
    return loss_v + k * real


def facemix_loss(
    logits_mix: torch.Tensor,
    logits_real: torch.Tensor,
    labels: torch.Tensor,
    index: torch.Tensor,
    lam: torch.Tensor | float,
    kappa: torch.Tensor,
    form: str = "L4",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The FaceMix loss (Eq. 6, 7, 11-14), mean over pairs.

    Args:
        logits_mix: [N, K] predictions on the virtual samples ``x~_n = lam x_n + (1-lam) x_index[n]``.
        logits_real: [N, K] predictions on the unmixed samples ``x_n``; the partner's are
            ``logits_real[index]``, so ``L_j`` of pair n is the CE of sample ``index[n]``.
        labels: long [N] classes ``y_n``.
        index: long [N] the partner of each sample.
        lam: float [N] or a scalar, the weight of ``x_n`` in the mix.
        kappa: float [N] in [0, 1] (:func:`compute_kappa`), not differentiated through.
        form: ``L1`` .. ``L4`` (Eq. 11-14).
    Returns:
        (scalar loss, {"v": mean L_v, "real": mean (L_i + L_j), "kappa": mean kappa}), the
        logs detached.
    """
    check_loss_form(form)
    n, k = logits_mix.shape
    if logits_real.shape != (n, k) or labels.shape != (n,) or index.shape != (n,):
        raise ValueError(
            f"logits_mix / logits_real must be [N, K] and labels / index [N], got "
            f"{tuple(logits_mix.shape)}, {tuple(logits_real.shape)}, {tuple(labels.shape)}, "
            f"{tuple(index.shape)}"
        )
    lam_t = torch.as_tensor(lam, dtype=logits_mix.dtype, device=logits_mix.device)
    lam_t = lam_t.expand(n)[:, None] if lam_t.dim() == 0 else lam_t.reshape(n, 1)
    one = F.one_hot(labels, k).to(logits_mix.dtype)
    target = lam_t * one + (1.0 - lam_t) * one[index]  # Eq. 6
    loss_v = soft_cross_entropy(logits_mix, target)  # Eq. 7
    ce = F.cross_entropy(logits_real, labels, reduction="none")  # [N]
    loss_i, loss_j = ce, ce[index]
    kappa = kappa.to(logits_mix.device)
    per = combine(form, loss_v, loss_i, loss_j, kappa)
    logs = {
        "v": loss_v.mean().detach(),
        "real": (loss_i + loss_j).mean().detach(),
        "kappa": kappa.float().mean().detach(),
    }
    return per.mean(), logs
