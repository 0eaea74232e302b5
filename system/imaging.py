"""Small image helpers shared by run outputs: event rendering and panel layout."""

from __future__ import annotations

import cv2
import numpy as np

from foveate.system.types import EventPacket


def events_to_image(packet: EventPacket) -> np.ndarray:
    """Polarity image (H, W, 3) uint8: ON events blue, OFF events red, on white."""
    w, h = packet.sensor_size
    img = np.full((h, w, 3), 255, np.uint8)
    ev = packet.events
    on = ev["p"] == 1
    img[ev["y"][~on], ev["x"][~on]] = (40, 40, 220)
    img[ev["y"][on], ev["x"][on]] = (220, 90, 30)
    return img


#: BGR colours of the six DDD17 classes (flat, construction+sky, object, nature, human, vehicle), Cityscapes-like.
CLASS_COLOURS_BGR = np.array([[128, 64, 128], [70, 70, 70], [0, 220, 220], [35, 142, 107], [60, 20, 220], [142, 0, 0]],
                             np.uint8)


def labels_to_image(labels: np.ndarray) -> np.ndarray:
    """Class-id map (H, W) -> colour image (H, W, 3) uint8 (ids beyond the palette show white)."""
    lut = np.full((256, 3), 255, np.uint8)
    lut[: len(CLASS_COLOURS_BGR)] = CLASS_COLOURS_BGR
    return lut[np.asarray(labels, dtype=np.uint8)]


def draw_boxes(image: np.ndarray, boxes, colour=(0, 200, 255)) -> np.ndarray:
    """A copy of ``image`` (BGR) with ``boxes`` (dicts with ``box`` = x0, y0, x1, y1 in pixels) outlined."""
    out = to_bgr(image).copy()
    for b in boxes:
        x0, y0, x1, y1 = (int(round(v)) for v in b["box"])
        cv2.rectangle(out, (x0, y0), (max(x1 - 1, x0), max(y1 - 1, y0)), colour, 1)
    return out


def to_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


def label_panel(image: np.ndarray, title: str, height: int) -> np.ndarray:
    """Resize to ``height`` keeping aspect, with a title bar on top."""
    img = to_bgr(image)
    scale = height / img.shape[0]
    img = cv2.resize(img, (max(1, int(round(img.shape[1] * scale))), height), interpolation=cv2.INTER_AREA)
    bar = np.full((28, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def side_by_side(panels: list[np.ndarray], gap: int = 8) -> np.ndarray:
    h = max(p.shape[0] for p in panels)
    cols = []
    for i, p in enumerate(panels):
        if p.shape[0] < h:
            p = np.vstack([p, np.full((h - p.shape[0], p.shape[1], 3), 255, np.uint8)])
        cols.append(p)
        if i < len(panels) - 1:
            cols.append(np.full((h, gap, 3), 255, np.uint8))
    return np.hstack(cols)
