"""``foveate twin``: look at the digital twin: world, wide view, events and a search view side by side."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from foveate.system.errors import ConfigError
from foveate.tools.argtypes import nonnegative_float, positive_float

NAME = "twin"
HELP = "render the simulated rig's world, wide view, event view and a search view into twin.png"


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="RIG", help="rig YAML with sim devices (default: the embedded simulated rig)")
    p.add_argument("--seconds", type=nonnegative_float, default=1.0, help="rig-clock time to run before the pictures (default: 1)")
    p.add_argument("--events-ms", type=positive_float, default=30.0, help="event window shown, ms (default: 30)")
    p.add_argument("--out", type=Path, default=Path("out/twin"), help="output folder (default: out/twin)")
    p.add_argument("--save-scene", type=Path, metavar="FILE", help="also save the scene (JSON, loadable with sim.scene_file)")


def world_panorama(scene, t_s: float, extent_deg=(-36.0, 36.0, -26.0, 26.0), step_deg: float = 0.1):
    """Equirectangular render of a panorama scene: intensity (H, W) float32, labels, ids and drawn target views."""
    az0, az1, el0, el1 = extent_deg
    az = np.arange(az0 + step_deg / 2, az1, step_deg)
    el = np.arange(el1 - step_deg / 2, el0, -step_deg)
    A, E = np.meshgrid(az, el)
    inten, labels = scene.static_angles(A, E, step_deg)
    ids = np.zeros(labels.shape, np.uint16)
    views = scene.draw_targets(inten, labels, ids, A, E, t_s, pitch_deg=step_deg)
    return inten, labels, ids, views, (az0, el1, step_deg)


def twin_picture(rig, out_path: Path, events_ms: float = 30.0) -> dict:
    """Write the side-by-side picture of an open simulated rig to ``out_path``; returns facts about it.

    Panels: the world panorama (targets boxed) and its ground-truth classes, then the wide
    camera (ground-truth boxes), the last ``events_ms`` of events, and the search camera aimed
    at the nearest reachable target through the twin's true galvo geometry. Moves the search
    galvo and advances the rig clock by a little more than ``events_ms``.
    """
    from foveate.hardware.sim.optics import aim_commands
    from foveate.hardware.sim.panorama import PanoramaScene
    from foveate.hardware.sim.twin import Twin
    from foveate.system.imaging import draw_boxes, events_to_image, label_panel, labels_to_image, side_by_side

    twin = rig.context.shared.get("sim.twin")
    if not isinstance(twin, Twin):
        raise ConfigError(f"{rig.config.source}: no simulated devices: the twin picture needs a rig with sim backends")
    info: dict = {"rig": rig.config.name, "scene": getattr(twin.scene, "name", "?")}
    clock = rig.clock
    rows = []
    t_s = clock.now_s()
    top = []
    if isinstance(twin.scene, PanoramaScene):
        inten, labels, ids, views, (az0, el1, step) = world_panorama(twin.scene, t_s)
        boxes = []
        for v in views:
            if np.any(ids == v.id + 1):
                boxes.append({"box": ((v.az_lo - az0) / step, (el1 - v.el_hi) / step,
                                      (v.az_hi - az0) / step, (el1 - v.el_lo) / step)})
        pano = (np.clip(inten, 0, 1) * 255).astype(np.uint8)
        top.append(label_panel(draw_boxes(pano, boxes, (0, 200, 255)), f"world panorama ({twin.scene.name}, "
                               f"{len(twin.scene.targets)} targets, {len(boxes)} in view)", 330))
        top.append(label_panel(labels_to_image(labels), "world: ground-truth classes (DDD17 six)", 330))
        info["targets"] = len(twin.scene.targets)
    bottom = []
    wide = rig.role("wide_camera") if rig.has_role("wide_camera") else None
    events = rig.role("wide_events") if rig.has_role("wide_events") else None
    galvo = rig.role("search_galvo") if rig.has_role("search_galvo") else None
    search = rig.role("search_camera") if rig.has_role("search_camera") else None
    if events is not None:
        events.read()  # start a fresh window
    if wide is not None:
        f = wide.read()
        bottom.append(label_panel(draw_boxes(f.image, f.meta.get("boxes", ())), "wide camera (ground-truth boxes)", 300))
    if events is not None:
        clock.sleep_s(events_ms * 1e-3)
        p = events.read()
        bottom.append(label_panel(events_to_image(p), f"events, last {events_ms:g} ms ({len(p)})", 300))
        info["events_in_window"] = len(p)
    if galvo is not None and search is not None and hasattr(search, "true_galvo_camera"):
        gcam = twin.galvo_camera(search.name)
        dirs = twin.target_directions(clock.now_s())
        views = getattr(twin.scene, "target_views", lambda t: [])(clock.now_s())
        (x0, x1), (y0, y1) = galvo.limits_deg
        aimed = None
        for v in sorted(views, key=lambda v: v.dist_m):
            try:
                tx, ty = aim_commands(gcam, dirs[v.id])
            except ValueError:
                continue
            if x0 <= tx <= x1 and y0 <= ty <= y1:
                aimed = (v, tx, ty)
                break
        if aimed is not None:
            galvo.move_to(aimed[1], aimed[2])
            galvo.wait_settled(timeout_s=0.1)
        f = search.read()
        title = f"search view ({aimed[0].class_name} {aimed[0].id} at {aimed[0].dist_m:.0f} m)" if aimed else "search view"
        bottom.append(label_panel(draw_boxes(f.image, f.meta.get("boxes", ())), title, 300))
    if top:
        rows.append(side_by_side(top))
    if bottom:
        rows.append(side_by_side(bottom))
    if not rows:
        raise ConfigError(f"{rig.config.source}: nothing to draw (no panorama scene and no cameras)")
    width = max(r.shape[1] for r in rows)
    rows = [np.hstack([r, np.full((r.shape[0], width - r.shape[1], 3), 255, np.uint8)]) for r in rows]
    picture = np.vstack([np.vstack([r, np.full((8, width, 3), 255, np.uint8)]) for r in rows])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out_path), picture)
    return info


def run(args) -> int:
    from foveate.system.rig import Rig

    if not args.seconds >= 0 or not args.events_ms > 0:
        raise ConfigError("foveate twin: --seconds must be >= 0 and --events-ms > 0")
    rig = Rig.from_file(args.config)
    path = args.out / "twin.png"
    with rig:
        rig.clock.sleep_s(args.seconds)
        info = twin_picture(rig, path, args.events_ms)
        if args.save_scene is not None:
            rig.context.shared["sim.twin"].save_scene(args.save_scene)
            print(f"wrote {args.save_scene}")
    print(json.dumps(info))
    print(f"wrote {path}")
    return 0
