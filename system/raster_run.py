"""A plain raster sweep of the search galvo over the rig: the baseline run loop.

Visits a serpentine grid of mirror angles whose spacing tiles the search
camera's footprint, reads the wide cameras at their own rate, and writes a
summary and pictures. The probability-search scheduler replaces this as the
main loop; the raster stays as its baseline.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from foveate.drivers.event_camera import EventCamera
from foveate.drivers.frame_camera import FrameCamera
from foveate.drivers.galvo import Galvo
from foveate.system.imaging import draw_boxes, events_to_image, label_panel, labels_to_image, side_by_side
from foveate.system.rig import Rig
from foveate.system.types import EventPacket

log = logging.getLogger(__name__)


def raster_grid(limits_deg, step_deg: tuple[float, float]) -> np.ndarray:
    """Serpentine grid of (theta_x, theta_y) mechanical degrees covering ``limits_deg``.

    Returns (N, 2) float64; rows alternate direction so consecutive views are neighbours.
    """
    (x0, x1), (y0, y1) = limits_deg
    xs = np.arange(x0 + step_deg[0] / 2, x1, step_deg[0])
    ys = np.arange(y1 - step_deg[1] / 2, y0, -step_deg[1])
    pts = []
    for i, y in enumerate(ys):
        row = xs if i % 2 == 0 else xs[::-1]
        pts.extend((x, y) for x in row)
    return np.asarray(pts, dtype=np.float64)


@dataclass
class RasterResult:
    summary: dict
    pictures: list[Path]


def run_raster(rig: Rig, seconds: float, out_dir: Path, step_deg: tuple[float, float] | None = None,
               progress: bool = True) -> RasterResult:
    """Sweep for ``seconds`` of rig-clock time; write ``summary.json`` and PNGs into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    galvo: Galvo = rig.role("search_galvo")  # type: ignore[assignment]
    search: FrameCamera = rig.role("search_camera")  # type: ignore[assignment]
    wide: FrameCamera | None = rig.role("wide_camera") if rig.has_role("wide_camera") else None  # type: ignore[assignment]
    events: EventCamera | None = rig.role("wide_events") if rig.has_role("wide_events") else None  # type: ignore[assignment]
    clock = rig.clock
    if step_deg is None:
        # Footprint tiling: the view turns twice the mechanical angle.
        fov = float(getattr(search, "hfov_deg", 2.0))
        step_deg = (fov / 2, fov / 2)
    grid = raster_grid(galvo.limits_deg, step_deg)
    log.info("raster of %d views, step %.3f x %.3f deg", len(grid), *step_deg)

    t_start_ns = clock.now_ns()
    t_end_ns = t_start_ns + int(seconds * 1e9)
    wall0 = time.perf_counter()
    settle_ns: list[int] = []
    n_search = 0
    n_with_target = 0
    n_wide = 0
    n_events = 0
    last_wide = None
    last_search = None  # the latest search frame that shows a target (ground truth), else the latest
    last_packet: EventPacket | None = None
    wide_period_ns = int(1e9 / 30)
    next_wide_ns = t_start_ns
    thumb = 24
    mosaic_cols = len(np.unique(grid[:, 0]))
    mosaic_rows = len(np.unique(grid[:, 1]))
    mosaic = np.full((mosaic_rows * thumb, mosaic_cols * thumb), 255, np.uint8)
    xs = np.sort(np.unique(grid[:, 0]))
    ys = np.sort(np.unique(grid[:, 1]))[::-1]
    bar = tqdm(total=int(seconds * 1000), unit="ms", desc="raster (sim time)", disable=not progress)
    i = 0
    while clock.now_ns() < t_end_ns:
        tx, ty = grid[i % len(grid)]
        i += 1
        t_cmd = clock.now_ns()
        galvo.move_to(tx, ty)
        state = galvo.wait_settled(timeout_s=0.05)
        settle_ns.append(state.t_ns - t_cmd)
        frame = search.read()
        n_search += 1
        labels = frame.meta.get("labels") if frame.meta else None
        if labels is not None and np.any(labels >= 4):
            n_with_target += 1
            last_search = frame
        elif last_search is None or not np.any(last_search.meta.get("labels", np.zeros(1)) >= 4):
            last_search = frame
        r = int(np.searchsorted(-ys, -ty))
        c = int(np.searchsorted(xs, tx))
        mosaic[r * thumb:(r + 1) * thumb, c * thumb:(c + 1) * thumb] = cv2.resize(
            frame.image if frame.image.ndim == 2 else cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY),
            (thumb, thumb), interpolation=cv2.INTER_AREA)
        now = clock.now_ns()
        if now >= next_wide_ns:
            if wide is not None:
                last_wide = wide.read()
                n_wide += 1
            if events is not None:
                last_packet = events.read()
                n_events += len(last_packet)
            next_wide_ns = now + wide_period_ns
        bar.update(int((clock.now_ns() - t_start_ns) / 1e6) - bar.n)
    bar.close()
    wall_s = time.perf_counter() - wall0
    sim_s = (clock.now_ns() - t_start_ns) * 1e-9
    settle = np.asarray(settle_ns) * 1e-6
    summary = {
        "loop": "raster",
        "rig": rig.config.name,
        "clock": type(clock).__name__,
        "sim_seconds": round(sim_s, 6),
        "wall_seconds": round(wall_s, 3),
        "search_frames": n_search,
        "search_fps_sim": round(n_search / sim_s, 2) if sim_s > 0 else 0.0,
        "search_fps_wall": round(n_search / wall_s, 2) if wall_s > 0 else 0.0,
        "raster_views": len(grid),
        "raster_step_deg": list(step_deg),
        "settle_ms": {"mean": round(float(settle.mean()), 4), "p50": round(float(np.percentile(settle, 50)), 4),
                      "p99": round(float(np.percentile(settle, 99)), 4)} if len(settle) else {},
        "search_frames_with_target_gt": n_with_target,
        "wide_frames": n_wide,
        "events": n_events,
        "frames_dropped": {name: getattr(d, "frames_dropped", 0) for name, d in rig.devices.items()
                           if isinstance(d, FrameCamera)},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    pictures = []
    panels = []
    # Ground truth (simulated rigs only) is drawn for people to look at; the loop never reads it.
    if last_wide is not None and last_wide.meta.get("labels") is not None:
        world = draw_boxes(labels_to_image(last_wide.meta["labels"]), last_wide.meta.get("boxes", ()), (255, 255, 255))
        panels.append(label_panel(world, "world: ground-truth classes", 360))
    if last_wide is not None:
        panels.append(label_panel(last_wide.image, "wide camera", 360))
    if last_packet is not None:
        panels.append(label_panel(events_to_image(last_packet), f"events ({len(last_packet)} in last packet)", 360))
    if last_search is not None:
        img = draw_boxes(last_search.image, last_search.meta.get("boxes", ()))
        panels.append(label_panel(img, "search view", 360))
    panels.append(label_panel(mosaic, "search views (raster mosaic)", 360))
    overview = side_by_side(panels)
    p = out_dir / "overview.png"
    cv2.imwrite(str(p), overview)
    pictures.append(p)
    return RasterResult(summary, pictures)
