"""Segment a recorded event stream window by window and write what a user wants to look at.

Outputs in ``out_dir``: ``labels/window_NNNNNN.png`` (uint8 class id per sensor pixel, 255 where
the model sees nothing: rows cropped off), ``overlay/window_NNNNNN.png`` (events over the class
colours), ``windows.csv`` (one row per window: time range, events, class pixel counts) and
``summary.json`` (source, sensor, mapping, model, windows per second, class histogram).
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import cv2
import numpy as np

from foveate.models.sltnet.segmenter import SLTNetSegmenter

NO_LABEL = 255

# RGB, Cityscapes-style colours of DDD17's six classes; other class sets fall back to a fixed palette.
DDD17_COLOURS = {
    "flat": (128, 64, 128), "construction+sky": (70, 70, 70), "object": (220, 220, 0),
    "nature": (107, 142, 35), "human": (220, 20, 60), "vehicle": (0, 0, 142),
}
_PALETTE = [(128, 64, 128), (70, 70, 70), (220, 220, 0), (107, 142, 35), (220, 20, 60), (0, 0, 142),
            (244, 35, 232), (190, 153, 153), (153, 153, 153), (250, 170, 30), (0, 60, 100), (119, 11, 32)]


def class_colours(classes: tuple[str, ...]) -> np.ndarray:
    """``[K + 1, 3]`` uint8 RGB colours; the last row (index -1) is for unlabelled pixels."""
    cols = [DDD17_COLOURS.get(c, _PALETTE[i % len(_PALETTE)]) for i, c in enumerate(classes)]
    return np.array(cols + [(0, 0, 0)], np.uint8)


def overlay(labels: np.ndarray, events: np.ndarray, colours: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """RGB image: class colours blended over an event frame (ON white, OFF black, no event grey)."""
    h, w = labels.shape
    frame = np.full((h, w), 128, np.uint8)
    if len(events):
        frame[events["y"], events["x"]] = np.where(events["p"] > 0, 255, 0).astype(np.uint8)
    idx = np.where(labels == NO_LABEL, len(colours) - 1, labels)
    colour = colours[idx].astype(np.float32)
    grey = np.repeat(frame[..., None], 3, 2).astype(np.float32)
    return (alpha * colour + (1 - alpha) * grey).clip(0, 255).astype(np.uint8)


def replay_events(reader, out_dir: str | Path, segmenter: SLTNetSegmenter, window_us: int = 50_000,
                  max_windows: int | None = None, images: bool = True, progress: bool = True,
                  source: str = "") -> dict:
    """Segment every ``window_us`` window of ``reader`` (an open :class:`EventReader`); returns the summary."""
    from tqdm import tqdm

    from foveate.system.events import TimeWindows

    out = Path(out_dir)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    if images:
        (out / "overlay").mkdir(exist_ok=True)
    w, h = reader.sensor_size
    classes = segmenter.classes
    colours = class_colours(classes)
    k = len(classes)
    t_range = reader.t_range
    total = None
    if t_range is not None:
        total = (t_range[1] - t_range[0]) // window_us + 1
        if max_windows:
            total = min(total, max_windows)
    totals = np.zeros(k + 1, np.int64)
    n, n_events, infer_s = 0, 0, 0.0
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc="replay", unit="win", disable=not progress)
    with open(out / "windows.csv", "w", newline="") as fcsv:
        writer = csv.writer(fcsv)
        writer.writerow(["window", "t_start_us", "t_end_us", "events", *classes, "unlabelled"])
        first = t_range[0] if t_range else 0
        for packet in reader.windows(TimeWindows(window_us, origin_us=first)):
            if max_windows and n >= max_windows:
                break
            ti = time.perf_counter()
            prob = segmenter.segment_events(packet)
            infer_s += time.perf_counter() - ti
            labels = prob.argmax(0).astype(np.uint8)
            labels[prob.max(0) <= 0] = NO_LABEL  # rows the model never saw
            hist = np.bincount(np.where(labels == NO_LABEL, k, labels).ravel(), minlength=k + 1)
            totals += hist
            cv2.imwrite(str(out / "labels" / f"window_{n:06d}.png"), labels)
            if images:
                img = overlay(labels, packet.events, colours)
                cv2.imwrite(str(out / "overlay" / f"window_{n:06d}.png"), img[..., ::-1])
            writer.writerow([n, packet.t_start_us, packet.t_end_us, len(packet), *hist.tolist()])
            n += 1
            n_events += len(packet)
            bar.update(1)
    bar.close()
    wall = time.perf_counter() - t0
    px = totals.sum()
    c = segmenter.config
    summary = {
        "source": source,
        "sensor_size": [w, h],
        "windows": n,
        "window_us": window_us,
        "events": n_events,
        "model": {"name": "SLTNet", "config": c.as_dict(), "runtime": segmenter.runner.backend},
        "mapping": {"crop_bottom_rows": segmenter.crop_bottom,
                    "resize": f"bilinear {h - segmenter.crop_bottom}x{w} -> {c.height}x{c.width} (voxel grid), "
                              "probabilities resized back bilinearly"},
        "windows_per_s": round(n / infer_s, 2) if infer_s > 0 else None,
        "windows_per_s_end_to_end": round(n / wall, 2) if wall > 0 else None,
        "class_histogram": {name: int(v) for name, v in zip((*classes, "unlabelled"), totals)},
        "class_fraction": {name: (float(v) / px if px else 0.0) for name, v in zip((*classes, "unlabelled"), totals)},
        "outputs": {"labels": "labels/window_NNNNNN.png", "overlay": "overlay/window_NNNNNN.png" if images else None,
                    "per_window": "windows.csv"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
