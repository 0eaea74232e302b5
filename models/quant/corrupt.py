"""Domain-shift corruptions for float-vs-quantized robustness (the concern of TTAQ).

Images (the detector's ``[N, 1, H, W]`` in [0, 1]): Gaussian sensor noise, Gaussian blur,
low contrast (toward mid grey), low light (gain down, then noise). Event voxel grids
(SLTNet's ``[N, bins, H, W]``, normalised over non-zero voxels): event-rate drop (a share of
the non-zero voxels removed), event-rate increase (background-activity events added at
random pixels and bins), spatial blur (defocus), each renormalised the way
:mod:`foveate.models.sltnet.preprocess` normalises a window (mean 0, std 1 over non-zeros).
Every corruption is seeded; severities are in the names.
"""

from __future__ import annotations

import cv2
import numpy as np

IMAGE_CORRUPTIONS = ("noise", "blur", "low_contrast", "low_light")
EVENT_CORRUPTIONS = ("rate_drop", "rate_up", "blur")


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            out[i, c] = cv2.GaussianBlur(x[i, c], (0, 0), sigma)
    return out


def corrupt_images(x: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        y = x + rng.normal(0, 0.06, x.shape)
    elif kind == "blur":
        y = _blur(x, 1.5)
    elif kind == "low_contrast":
        y = 0.5 + 0.35 * (x - 0.5)
    elif kind == "low_light":
        y = 0.25 * x + rng.normal(0, 0.02, x.shape)
    else:
        raise ValueError(f"image corruption '{kind}': expected one of {IMAGE_CORRUPTIONS}")
    return np.clip(y, 0, 1).astype(np.float32)


def _renorm(v: np.ndarray) -> np.ndarray:
    out = np.zeros_like(v)
    for i in range(len(v)):
        nz = v[i] != 0
        if nz.sum() > 1:
            vals = v[i][nz]
            out[i][nz] = (vals - vals.mean()) / (vals.std() + 1e-6)
    return out


def corrupt_events(x: np.ndarray, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = x.astype(np.float32).copy()
    if kind == "rate_drop":  # half of the events lost (lower contrast sensitivity, faster bias)
        y[rng.random(y.shape) < 0.5] = 0
    elif kind == "rate_up":  # background activity: 2% of voxels get a ±1 event
        noise = (rng.random(y.shape) < 0.02) * rng.choice([-1.0, 1.0], y.shape)
        y = y + noise.astype(np.float32) * (np.abs(y[y != 0]).mean() if (y != 0).any() else 1.0)
    elif kind == "blur":
        y = _blur(y, 1.0)
        y[np.abs(y) < 1e-3] = 0
    else:
        raise ValueError(f"event corruption '{kind}': expected one of {EVENT_CORRUPTIONS}")
    return _renorm(y)
