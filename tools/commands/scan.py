"""``foveate scan``: light-section scan of the measuring volume into a point cloud (PLY + preview PNG).

Models: the rig file's ``calibration.scan_camera`` (a ``galvo_camera``
calibration) and ``calibration.laser`` (a laser calibration from
``foveate.calibration.light_section``). A simulated rig without them scans
with the twin's true geometry (``--models twin``: the accuracy then shows
stripe, galvo and quantisation noise only), or calibrates its laser first
(``--models calibrate-laser``: simulated board captures through the true
camera, the dynamic-laser fit, then the scan with the fitted laser).
``--report`` (simulated rigs) scores the cloud against the scene's exact
geometry, feature by feature.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from foveate.system.errors import ConfigError, FoveateError
from foveate.system.light_section.stripe import METHODS, StripeParams

log = logging.getLogger(__name__)

NAME = "scan"
HELP = "light-section scan: sweep the laser in every camera view, write a point cloud (PLY) and a preview PNG"
DEFAULT_RIG = "sim_light_section.yaml"


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="RIG", help="rig YAML (default: the embedded simulated light-section rig)")
    p.add_argument("--scene", metavar="NAME",
                   help="simulated rigs: scene to scan (reference, spheres, plane, or a registered scene name)")
    p.add_argument("--out", type=Path, required=True, metavar="CLOUD.ply", help="output point cloud (PLY)")
    p.add_argument("--report", action="store_true",
                   help="simulated rigs: accuracy per feature against the scene's exact geometry (JSON + Markdown)")
    p.add_argument("--method", choices=METHODS, default="centroid", help="stripe-centre method (default: centroid)")
    p.add_argument("--spacing-mm", type=float, default=2.0,
                   help="stripe spacing at the far end of the volume (default: 2 mm)")
    p.add_argument("--models", choices=("auto", "files", "twin", "calibrate-laser"), default="auto",
                   help="camera and laser models: the rig's calibration files, the twin's truth, or a simulated "
                        "laser calibration first (default: files when the rig names them, else twin)")
    p.add_argument("--max-views", type=int, metavar="N", help="scan only the first N camera views")
    p.add_argument("--angle-source", choices=("commanded", "measured"), default="commanded",
                   help="galvo angles for triangulation: the commands, or the position feedback")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _rig_config(args):
    from importlib import resources

    from foveate.system.config import load_rig

    path = args.config or Path(str(resources.files("foveate.hardware") / "rigs" / DEFAULT_RIG))
    cfg = load_rig(path)
    if args.scene:
        if not cfg.simulated:
            raise ConfigError(f"{cfg.source}: --scene works on simulated rigs only")
        from foveate.hardware.sim.scene import SCENES

        name = args.scene if args.scene in SCENES or ":" in args.scene else f"light_section_{args.scene}"
        if name not in SCENES and ":" not in name:
            known = sorted(n.removeprefix("light_section_") for n in SCENES if n.startswith("light_section_"))
            raise ConfigError(f"--scene: unknown scene '{args.scene}' (expected one of: {', '.join(known)})")
        cfg.sim["scene"] = name
    for role in ("scan_camera", "scan_galvo", "laser", "laser_galvo"):
        if cfg.device_by_role(role) is None:
            raise ConfigError(f"{cfg.source}: no device has role '{role}' (a scan needs scan_camera, scan_galvo, "
                              "laser and laser_galvo)")
    return cfg


def _models(args, rig, notes: list[str]):
    """(GalvoCamera, DynamicLaser, description) for the scan."""
    cfg = rig.config
    twin = rig.context.shared.get("sim.twin")
    mode = args.models
    have_files = "scan_camera" in cfg.calibration and "laser" in cfg.calibration
    if mode == "auto":
        mode = "files" if have_files else ("twin" if twin is not None else "files")
    if mode == "files":
        if not have_files:
            raise ConfigError(f"{cfg.source}: calibration: a scan needs 'scan_camera' (galvo_camera calibration) and "
                              "'laser' (laser calibration) files")
        from foveate.calibration.calib_file import load_calibration
        from foveate.calibration.light_section.laser_file import load_laser_calibration

        cam = load_calibration(cfg.rig_dir / cfg.calibration["scan_camera"], "galvo_camera").galvo
        laser, _ = load_laser_calibration(cfg.rig_dir / cfg.calibration["laser"])
        return cam, laser, "calibration files"
    if twin is None or not hasattr(getattr(twin, "scene", None), "optics"):
        raise ConfigError(f"--models {mode}: needs a simulated rig with a light-section scene")
    cam_name = cfg.device_by_role("scan_camera")
    cam = twin.galvo_camera(cam_name)
    if mode == "twin":
        notes.append("models: the twin's true camera and laser geometry (no calibration error)")
        return cam, twin.scene.true_laser_model(twin), "twin ground truth"
    from foveate.hardware.sim.light_section.calibrate import simulated_laser_calibration

    out = args.out.with_name(args.out.stem + "_laser.yaml")
    laser, fit = simulated_laser_calibration(twin.scene, cam, out, progress=not args.no_progress,
                                             true_laser=twin.scene.true_laser_model(twin))
    notes.append(f"models: the twin's true camera; laser calibrated in simulation ({out}, "
                 f"RMS {fit['rms_mm']:.4f} mm)")
    return cam, laser, f"laser calibrated ({out.name})"


def run(args) -> int:
    from foveate.system.light_section.cloud_io import cloud_views, stripe_overlay, write_ply
    from foveate.system.light_section.scan import ScanSettings, plan_scan, run_scan, stripe_axis
    from foveate.system.light_section.triangulate import Triangulator
    from foveate.system.rig import Rig

    if not args.spacing_mm > 0:
        raise FoveateError("--spacing-mm must be > 0")
    if args.max_views is not None and args.max_views < 1:
        raise FoveateError("--max-views must be >= 1")
    if args.out.suffix.lower() != ".ply":
        raise FoveateError(f"--out: expected a .ply file name, got '{args.out}'")
    cfg = _rig_config(args)
    notes: list[str] = []
    with Rig(cfg) as rig:
        cam, laser, model_desc = _models(args, rig, notes)
        tri = Triangulator(cam, laser)
        settings = ScanSettings(stripe_spacing_mm=args.spacing_mm, max_views=args.max_views,
                                angle_source=args.angle_source, stripe=StripeParams(method=args.method))
        plan = plan_scan(tri, settings, rig.role("scan_galvo").limits_deg, rig.role("laser_galvo").limits_deg[0])
        if not plan:
            raise FoveateError("the scan plan is empty: the laser cannot reach any camera view of the volume")
        settings = replace(settings, stripe=replace(settings.stripe, axis=stripe_axis(tri, plan, settings.volume_mm)))
        res = run_scan(rig, tri, plan, settings, progress=not args.no_progress)
        twin = rig.context.shared.get("sim.twin")
    out = args.out
    write_ply(out, res.points)
    summary = {"rig": cfg.name, "scene": cfg.sim.get("scene"), "models": model_desc, "cloud": str(out),
               **res.stats, "notes": notes}
    # Preview: cloud views and the stripe frame with the most centres.
    pics = [cloud_views(res.points, settings.volume_mm)]
    if res.samples:
        view, img, uv = max(res.samples, key=lambda s: len(s[2]))
        ov = stripe_overlay(img, uv)
        h = pics[0].shape[0]
        ov = cv2.resize(ov, (int(ov.shape[1] * h / ov.shape[0]), h), interpolation=cv2.INTER_AREA)
        pics.append(ov)
    preview = out.with_suffix(".png")
    cv2.imwrite(str(preview), np.hstack([pics[0], np.full((pics[0].shape[0], 10, 3), 255, np.uint8), *pics[1:]]))
    summary["preview"] = str(preview)
    if args.report:
        if twin is None or not hasattr(twin.scene, "geometry"):
            raise FoveateError("--report needs a simulated rig with a light-section scene (the ground truth)")
        from foveate.system.light_section.accuracy import accuracy_report, report_markdown
        from foveate.system.light_section.scan import points_xyz

        t0 = time.perf_counter()
        rep = accuracy_report(points_xyz(res.points), twin.scene.geometry)
        rep["scan"] = summary
        rep_json = out.with_name(out.stem + "_report.json")
        rep_md = out.with_name(out.stem + "_report.md")
        rep_json.write_text(json.dumps(rep, indent=1))
        rep_md.write_text(report_markdown(rep, f"Light-section accuracy: {cfg.sim.get('scene')} ({model_desc})"))
        summary["report"] = {"json": str(rep_json), "markdown": str(rep_md), **rep["summary"],
                             "report_s": round(time.perf_counter() - t0, 2)}
    print(json.dumps(summary, indent=2))
    return 0
