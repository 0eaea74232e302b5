"""From events to SLTNet's input: voxel grid, normalisation, mapping any sensor to the model size.

The pipeline follows the official DDD17 one: a ``bins``-deep voxel grid at the sensor
size (polarity ±1, bilinear in time over the window's first..last event), normalised by
the mean and standard deviation of its non-zero voxels (both by the project's
:func:`foveate.system.events.representations.voxel_grid`), then resized to the model input.

**Sensor → model mapping** (documented in docs/sltnet.md): optionally crop rows off the
bottom of the sensor (DDD17 drops the car hood, DSEC the bottom 40 rows), then a bilinear
resize (OpenCV ``INTER_LINEAR``, pixel-centre aligned) of every bin to ``height x width``;
labels go through the same crop and a nearest-neighbour resize. Predictions are mapped back
to the sensor by the inverse resize (bilinear on probabilities), the cropped rows get none.
"""

from __future__ import annotations

import cv2
import numpy as np

from foveate.system.events.representations import voxel_grid


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
    v = voxel_grid(events, bins, (sensor_hw[1], sensor_hw[0]), normalize=True)
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
