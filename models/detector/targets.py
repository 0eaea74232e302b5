"""Training targets on the stride-8 grid and the two losses (focal heatmap, Gaussian NLL).

Heatmap: per box an elliptical Gaussian (TTFNet's box-shaped kernel, sigma = 0.54 * side / 6)
with the cell holding the centre set to exactly 1 (CenterNet's positives). Regression
targets are given not only at that cell but at every cell where the box's kernel exceeds
``REG_MIN_WEIGHT``, weighted by the kernel: the peak found at test time may be a
neighbour of the true centre cell, and its offset and variance must still be right.
"""

from __future__ import annotations

import numpy as np
import torch

KERNEL_ALPHA = 0.54
REG_MIN_WEIGHT = 0.3
NLL_BETA = 0.5  # beta-NLL (Seitzer et al., ICLR 2022): keeps the means learning while variances grow


def encode(boxes: np.ndarray, classes: np.ndarray, n_classes: int, grid: tuple[int, int], stride: int
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of one image.

    Args:
        boxes: (n, 4) xyxy pixels; classes: (n,) class indices.
    Returns:
        heat (C, gh, gw) float32 in [0, 1]; reg (4, gh, gw) float32 (dx, dy, log w, log h in
        cells); weight (gh, gw) float32 (0 where no regression target).
    """
    gh, gw = grid
    heat = np.zeros((n_classes, gh, gw), np.float32)
    reg = np.zeros((4, gh, gw), np.float32)
    weight = np.zeros((gh, gw), np.float32)
    owner = np.zeros((gh, gw), np.float32)  # kernel value of the box that owns each cell's regression
    ys = np.arange(gh, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(gw, dtype=np.float32)[None, :] + 0.5
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])) if len(boxes) else []
    for i in order:  # large boxes first: where kernels tie, the smaller box takes the cell
        x0, y0, x1, y1 = boxes[i] / stride
        w, h = x1 - x0, y1 - y0
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx = max(KERNEL_ALPHA * w / 6, 0.35)
        sy = max(KERNEL_ALPHA * h / 6, 0.35)
        k = np.exp(-((xs - cx) ** 2 / (2 * sx * sx) + (ys - cy) ** 2 / (2 * sy * sy))).astype(np.float32)
        ci, cj = min(int(cx), gw - 1), min(int(cy), gh - 1)
        k[cj, ci] = 1.0
        c = int(classes[i])
        np.maximum(heat[c], k, out=heat[c])
        take = (k >= REG_MIN_WEIGHT) & (k >= owner)
        owner[take] = k[take]
        weight[take] = k[take]
        reg[0][take] = (cx - xs + np.zeros_like(ys))[take]
        reg[1][take] = (cy - ys + np.zeros_like(xs))[take]
        reg[2][take] = np.log(w)
        reg[3][take] = np.log(h)
    return heat, reg, weight


def flip_targets(heat: np.ndarray, reg: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of the horizontally mirrored image (cell i -> gw-1-i, dx -> -dx)."""
    reg = reg[..., ::-1].copy()
    reg[0] = -reg[0]
    return heat[..., ::-1].copy(), reg, weight[..., ::-1].copy()


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), normalised by the positives."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1.0 - pos
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    n = pos.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / n


def distill_loss(logits: torch.Tensor, teacher_prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared difference of the student's and a teacher's heatmap probabilities, summed over every
    cell and class and normalised by the ground-truth positives (as :func:`focal_loss` is).

    Dense heatmap distillation: the teacher's soft scores say how sure a dim target is and which
    background looks like one, which hard labels do not. The square of probabilities (not a KL
    divergence) because its gradient in logit space, ``2 (p - t) p (1 - p)``, vanishes on the
    easy background as the focal loss's does: a binary KL there outweighed the focal loss
    ten to one and slowed the student's detection training.
    """
    p = torch.sigmoid(logits)
    n = target.eq(1).float().sum().clamp(min=1.0)
    return ((p - teacher_prob.float()) ** 2).sum() / n


def gaussian_nll(reg_out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                 beta: float = NLL_BETA) -> torch.Tensor:
    """Weighted (beta-)Gaussian NLL of the 4 regressed quantities; means in ``reg_out[:, :4]``, log-variances in ``[:, 4:]``."""
    from foveate.models.detector.model import LOGVAR_MAX, LOGVAR_MIN

    mu = reg_out[:, :4]
    lv = reg_out[:, 4:8].clamp(LOGVAR_MIN, LOGVAR_MAX)
    nll = 0.5 * (lv + (target - mu) ** 2 * torch.exp(-lv))
    if beta > 0:
        nll = nll * torch.exp(lv.detach() * beta)
    w = weight.unsqueeze(1)
    return (nll * w).sum() / (w.sum() * 4).clamp(min=1.0)
