"""Segmentation metrics from one confusion matrix accumulated over a whole split.

mIoU is the mean over classes that occur in the ground truth or the predictions of the
split (classes absent from both have no IoU). Pixels labelled 255 are ignored.
"""

from __future__ import annotations

import numpy as np

from foveate.models.sltnet.config import IGNORE_INDEX


class ConfusionMatrix:
    def __init__(self, num_classes: int) -> None:
        self.k = num_classes
        self.matrix = np.zeros((num_classes, num_classes), np.int64)  # rows: truth, cols: prediction

    def update(self, pred: np.ndarray, truth: np.ndarray) -> None:
        pred = np.asarray(pred).reshape(-1).astype(np.int64)
        truth = np.asarray(truth).reshape(-1).astype(np.int64)
        if pred.shape != truth.shape:
            raise ValueError(f"prediction has {pred.size} pixels, labels have {truth.size}")
        keep = truth != IGNORE_INDEX
        bad = keep & ((truth < 0) | (truth >= self.k))
        if bad.any():
            raise ValueError(f"label {int(truth[bad][0])} outside 0..{self.k - 1} (and not the ignore label 255)")
        self.matrix += np.bincount(truth[keep] * self.k + pred[keep], minlength=self.k * self.k).reshape(self.k, self.k)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class absent from both truth and predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def summary(self, class_names: tuple[str, ...] | None = None) -> dict:
        iou = self.iou()
        total = self.matrix.sum()
        names = class_names or tuple(str(i) for i in range(self.k))
        m = self.matrix
        return {
            "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "pixel_accuracy": float(np.trace(self.matrix) / total) if total else float("nan"),
            "per_class_iou": {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)},
            # recall: share of a class's pixels found; precision: share of the pixels called that class
            # that are it (what a consumer of the map, e.g. the PPM's F table, has to reckon with)
            "per_class_recall": _ratios(names, np.diag(m), m.sum(1)),
            "per_class_precision": _ratios(names, np.diag(m), m.sum(0)),
            "confusion_matrix": m.tolist(),  # rows: truth, columns: prediction
            "pixels": int(total),
        }


def _ratios(names, num: np.ndarray, den: np.ndarray) -> dict:
    return {n: (float(a / b) if b else None) for n, a, b in zip(names, num, den)}


GRID_ROUND_TRIPS = ("majority", "bilinear")


def grid_round_trip(labels: np.ndarray, factor: int, num_classes: int, mode: str = "bilinear") -> np.ndarray:
    """The label map ``(H, W)`` drawn from its own class shares on a grid ``factor`` times coarser.

    Both modes start from each class's share of the labelled pixels in every grid cell (ignored
    pixels, 255, have no share and stay ignored). ``majority``: every cell takes its most common
    class. ``bilinear``: the shares are resized bilinearly back to ``(H, W)`` and arg-maxed per
    pixel, as SLTNet's last bilinear resize does to its half-resolution features.
    """
    import cv2

    lab = np.asarray(labels, np.uint8)
    h, w = lab.shape
    gh, gw = max(1, h // factor), max(1, w // factor)
    onehot = np.stack([(lab == k).astype(np.float32) for k in range(num_classes)], -1)
    shares = cv2.resize(onehot, (gw, gh), interpolation=cv2.INTER_AREA).reshape(gh, gw, num_classes)
    if mode == "majority":
        out = cv2.resize(shares.argmax(-1).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    elif mode == "bilinear":
        out = cv2.resize(shares, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, num_classes).argmax(-1)
    else:
        raise ValueError(f"grid round trip '{mode}' unknown (expected one of {GRID_ROUND_TRIPS})")
    out = out.astype(np.uint8)
    out[lab == IGNORE_INDEX] = IGNORE_INDEX
    return out


def grid_round_trip_scores(labels, num_classes: int, factor: int = 2,
                           class_names: tuple[str, ...] | None = None) -> dict:
    """Scores of the labels themselves after each :data:`GRID_ROUND_TRIPS` through a ``factor`` coarser grid.

    ``labels`` iterates over ``(H, W)`` maps. How much of each class survives being drawn on the
    grid from per-cell class shares: a measure of how small a split's objects are next to a
    network's decision grid. Not a bound on a network: its features can place a boundary between
    grid points (SLTNet's last LIF fires per full-resolution pixel).
    """
    if factor < 1:
        raise ValueError(f"grid factor {factor}: expected >= 1")
    mats = {mode: ConfusionMatrix(num_classes) for mode in GRID_ROUND_TRIPS}
    for lab in labels:
        for mode, cm in mats.items():
            cm.update(grid_round_trip(lab, factor, num_classes, mode), lab)
    return {mode: cm.summary(class_names) for mode, cm in mats.items()}
