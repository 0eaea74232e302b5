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
