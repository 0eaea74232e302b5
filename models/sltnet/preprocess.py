"""From events to SLTNet's input: voxel grid, normalisation, mapping any sensor to the model size.

The pipeline follows the official DDD17 one: a ``bins``-deep voxel grid at the sensor
size (polarity ±1, bilinear in time over the window's first..last event), normalised by
the mean and standard deviation of its non-zero voxels, then resized to the model input.

**Sensor → model mapping** (documented in docs/sltnet.md): optionally crop rows off the
bottom of the sensor (DDD17 drops the car hood, DSEC the bottom 40 rows), then a bilinear
resize (OpenCV ``INTER_LINEAR``, pixel-centre aligned) of every bin to ``height x width``;
labels go through the same crop and a nearest-neighbour resize. Predictions are mapped back
to the sensor by the inverse resize (bilinear on probabilities), the cropped rows get none.
"""

from __future__ import annotations

import cv2
import numpy as np

from foveate.system.types import EVENT_DTYPE


def voxel_grid(events: np.ndarray, bins: int, height: int, width: int) -> np.ndarray:
    """``[bins, height, width]`` float32 voxel grid, polarity ±1, bilinear in normalised time.

    Time runs from the first to the last event of ``events`` (``EVENT_DTYPE``, time-sorted)
    mapped onto ``[0, bins - 1]``; each event splits its polarity between its two nearest bins.
    """
    grid = np.zeros(bins * height * width, np.float32)
    if len(events) == 0:
        return grid.reshape(bins, height, width)
    if events.dtype != EVENT_DTYPE:
        raise TypeError(f"events must have dtype {EVENT_DTYPE}, got {events.dtype}")
    t = events["t"].astype(np.float64)
    dt = t[-1] - t[0]
    ts = (bins - 1) * (t - t[0]) / (dt if dt > 0 else 1.0)
    ti = np.floor(ts).astype(np.int64)
    frac = (ts - ti).astype(np.float32)
    pol = np.where(events["p"] > 0, 1.0, -1.0).astype(np.float32)
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    ok = (x < width) & (y < height)
    pix = y * width + x
    for tb, val in ((ti, pol * (1.0 - frac)), (ti + 1, pol * frac)):
        m = ok & (tb < bins)
        grid += np.bincount(tb[m] * height * width + pix[m], weights=val[m],
                            minlength=grid.size).astype(np.float32)
    return grid.reshape(bins, height, width)


def normalize_voxel(v: np.ndarray) -> np.ndarray:
    """Zero-mean, unit-std over the non-zero voxels; zeros stay zero (the official normalisation)."""
    nz = v != 0
    n = int(nz.sum())
    if n == 0:
        return v.astype(np.float32, copy=True)
    mean = v.sum(dtype=np.float64) / n
    var = (v.astype(np.float64) ** 2).sum() / n - mean**2
    std = np.sqrt(var) if var > 0 else 1.0
    return (nz * (v - mean) / std).astype(np.float32)


def resize_voxel(v: np.ndarray, height: int, width: int, crop_bottom: int = 0) -> np.ndarray:
    """Crop ``crop_bottom`` rows, then bilinear-resize every bin of ``[bins, H, W]`` to ``height x width``."""
    if crop_bottom:
        v = v[:, :-crop_bottom]
    if v.shape[1:] == (height, width):
        return np.ascontiguousarray(v, dtype=np.float32)
    hwc = np.ascontiguousarray(np.moveaxis(v, 0, -1), dtype=np.float32)
    out = cv2.resize(hwc, (width, height), interpolation=cv2.INTER_LINEAR)
    if out.ndim == 2:
        out = out[..., None]
    return np.ascontiguousarray(np.moveaxis(out, -1, 0))


def resize_labels(labels: np.ndarray, height: int, width: int, crop_bottom: int = 0) -> np.ndarray:
    """Crop then nearest-neighbour resize of an ``(H, W)`` uint8 label map."""
    if crop_bottom:
        labels = labels[:-crop_bottom]
    if labels.shape == (height, width):
        return np.ascontiguousarray(labels, dtype=np.uint8)
    return cv2.resize(np.ascontiguousarray(labels, dtype=np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)


def events_to_input(events: np.ndarray, sensor_hw: tuple[int, int], bins: int, height: int, width: int,
                    crop_bottom: int = 0) -> np.ndarray:
    """Model input ``[bins, height, width]`` for one window of events on a ``sensor_hw`` sensor."""
    v = normalize_voxel(voxel_grid(events, bins, *sensor_hw))
    return resize_voxel(v, height, width, crop_bottom)


def probabilities_to_sensor(prob: np.ndarray, sensor_hw: tuple[int, int], crop_bottom: int = 0) -> np.ndarray:
    """Map ``[K, h, w]`` model-size probabilities back onto the ``sensor_hw`` sensor (``[K, H, W]``).

    The rows cropped off the bottom before inference get probability 0 for every class.
    """
    H, W = sensor_hw
    rows = H - crop_bottom
    out = np.zeros((prob.shape[0], H, W), np.float32)
    out[:, :rows] = resize_voxel(prob, rows, W)
    return out
