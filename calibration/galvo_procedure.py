"""Galvo-camera calibration from a capture directory to a calibration file (and back for checks)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from foveate.calibration.board import detect_corners
from foveate.calibration.calib_file import (
    MirrorModel, camera_section, file_sha256, header, load_calibration, save_calibration,
)
from foveate.calibration.capture_set import CaptureSet, load_capture_dir
from foveate.calibration.errors import CalibrationError
from foveate.calibration.galvo_fit import GalvoFit, View, check_galvo, fit_galvo
from foveate.calibration.plots import mirror_geometry_plot, residual_plot

log = logging.getLogger(__name__)


@dataclass
class Detections:
    views: list[View]
    missing: list[str] = field(default_factory=list)  # images where the board was not found


def detect_views(cs: CaptureSet, allow_missing: bool = False, progress: bool = False) -> Detections:
    """Detect the board in every image; a board not found is an error naming the file unless ``allow_missing``.

    Rows with the same ``pose`` and commands are repeated frames of one view:
    its corners are the mean of the frames' corners and its measured angles
    (when recorded) the mean of theirs. The view is named after its first image.
    """
    obj = cs.board.object_points()
    groups: dict[tuple[str, float, float], list[tuple[str, np.ndarray, tuple[float, float] | None]]] = {}
    missing = []
    size = None
    for row in tqdm(cs.rows, desc="detecting corners", unit="img", disable=not progress, leave=False):
        img = cs.read_image(row)
        if cs.camera is not None and (img.shape[1], img.shape[0]) != (cs.camera.width, cs.camera.height):
            raise CalibrationError(
                f"{cs.image_path(row)}: image is {img.shape[1]}x{img.shape[0]} but camera.yaml says "
                f"{cs.camera.width}x{cs.camera.height}"
            )
        if size is None:
            size = (img.shape[1], img.shape[0])
        elif size != (img.shape[1], img.shape[0]):
            raise CalibrationError(f"{cs.image_path(row)}: image is {img.shape[1]}x{img.shape[0]}, earlier ones {size[0]}x{size[1]}")
        uv = detect_corners(img, cs.board)
        if uv is None:
            missing.append(str(cs.image_path(row)))
            continue
        groups.setdefault((row.pose, row.theta_x_deg, row.theta_y_deg), []).append((row.image, uv, row.measured_deg))
    if missing and not allow_missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise CalibrationError(
            f"{missing[0]}: board ({cs.board.cols}x{cs.board.rows} inner corners) not found{more}; "
            "check board.yaml or pass --allow-missing to skip such images"
        )
    for m in missing:
        log.warning("%s: board not found, skipped", m)
    views = []
    for (pose, tx, ty), frames in groups.items():
        uv = np.mean([f[1] for f in frames], axis=0)
        measured = None
        if frames[0][2] is not None:
            m = np.mean([f[2] for f in frames], axis=0)
            measured = (float(m[0]), float(m[1]))
        views.append(View(frames[0][0], pose, tx, ty, uv, obj, measured))
    return Detections(views, missing)


def image_size(cs: CaptureSet) -> tuple[int, int]:
    if cs.camera is not None:
        return (cs.camera.width, cs.camera.height)
    img = cs.read_image(cs.rows[0])
    return (img.shape[1], img.shape[0])


def _source(cs: CaptureSet, det: Detections) -> dict:
    return {
        "captures": str(cs.root.resolve()),
        "captures_sha256": file_sha256(cs.csv_path),
        "images": len(cs.rows),
        "views_used": len(det.views),
        "frames_per_view": round((len(cs.rows) - len(det.missing)) / max(1, len(det.views)), 3),
        "mirror_angles": ("measured: the galvo's position sensor at mid-exposure (measured_x_deg, measured_y_deg)"
                          if det.views and det.views[0].measured_deg is not None else "commanded"),
        "poses": len({v.pose for v in det.views}),
        "board": cs.board.as_dict(),
        "intrinsics": "camera.yaml (held fixed)" if cs.camera is not None else "fitted from these captures",
        "missing_board": [str(Path(m).relative_to(cs.root)) if Path(m).is_relative_to(cs.root) else m for m in det.missing],
    }


def per_view_table(fit: GalvoFit) -> list[dict]:
    return [
        {"image": v.name, "pose": v.pose, "theta_x_deg": v.theta_x_deg, "theta_y_deg": v.theta_y_deg,
         "rms_px": round(v.rms_px, 4), "max_px": round(v.max_px, 4)}
        for v in fit.views
    ]


@dataclass
class GalvoRun:
    fit: GalvoFit
    out: Path
    pictures: list[Path]


def calibrate_galvo_dir(capture_dir: str | Path, out: str | Path, allow_missing: bool = False,
                        refine_intrinsics: bool = False, progress: bool = False, limits_deg=None) -> GalvoRun:
    """Fit the galvo camera to a capture directory; write the calibration and its pictures next to ``out``."""
    cs = load_capture_dir(capture_dir)
    det = detect_views(cs, allow_missing, progress)
    size = image_size(cs)
    if limits_deg is None and isinstance(cs.meta.get("limits_deg"), list):
        limits_deg = cs.meta["limits_deg"]
    fit = fit_galvo(det.views, cs.camera, size, fit_intrinsics=True if refine_intrinsics else None, limits_deg=limits_deg)
    if det.views and det.views[0].measured_deg is None:
        fit.notes.append("mirror angles: the commanded ones (captures.csv has no measured_x_deg/measured_y_deg): the "
                         "galvo's position wobble stays in the data; capture with a galvo that records its position")
    out = Path(out)
    g = fit.model
    data = header("galvo_camera", _source(cs, det), {**fit.stats(), "per_view": per_view_table(fit)}, fit.notes)
    data.update({
        "frame": "world = the real camera frame (OpenCV axes: x right, y down, z forward), lengths in mm",
        "camera": camera_section(g.camera),
        "mirror1": MirrorModel.of(g.mirror1),
        "mirror2": MirrorModel.of(g.mirror2),
        "T_cw": g.T_cw.tolist(),
        "uncertainty": {k: float(f"{v:.4g}") for k, v in fit.sigma.items()},
        "not_determined": fit.not_determined,
        "weakly_determined": fit.weakly_determined,
        "limits_deg": [list(map(float, a)) for a in limits_deg] if limits_deg is not None else None,
    })
    save_calibration(out, data)
    stem = out.with_suffix("")
    by_name = {v.name: v for v in det.views}
    pics = [
        residual_plot(fit.views, size, Path(f"{stem}_residuals.png"),
                      f"galvo calibration: RMS {fit.rms_px:.3f} px over {len(fit.views)} views",
                      uv_of_view=lambda i: by_name[fit.views[i].name].uv),
        mirror_geometry_plot(g, Path(f"{stem}_geometry.png"), limits_deg),
    ]
    return GalvoRun(fit, out, pics)


def check_galvo_dir(calib_path: str | Path, capture_dir: str | Path, allow_missing: bool = False,
                    progress: bool = False) -> GalvoFit:
    """Reprojection RMS of a fixed calibration on captures (one board pose solved per ``pose`` group)."""
    calib = load_calibration(calib_path, expect_kind="galvo_camera")
    cs = load_capture_dir(capture_dir)
    model = calib.galvo
    if cs.camera is not None:
        log.info("%s: camera.yaml ignored by check (the calibration's intrinsics are used)", cs.root)
    det = detect_views(cs, allow_missing, progress)
    size = image_size(cs)
    if size != (model.camera.width, model.camera.height):
        raise CalibrationError(
            f"{cs.root}: images are {size[0]}x{size[1]} but {calib_path} was made for "
            f"{model.camera.width}x{model.camera.height}"
        )
    return check_galvo(model, det.views)


def rays_report(fit_model, true_model, limits_deg, n_cmd: int = 9, n_px: int = 5) -> dict:
    """Max/mean ray angle error (deg) between two models over the mirror range and the image (zero-view frame)."""
    from foveate.calibration.galvo_fit import ray_angle_errors_deg

    (x0, x1), (y0, y1) = limits_deg
    cmds = np.array([(a, b) for a in np.linspace(x0, x1, n_cmd) for b in np.linspace(y0, y1, n_cmd)])
    cam = fit_model.camera
    pix = np.array([(u, v) for u in np.linspace(0, cam.width - 1, n_px) for v in np.linspace(0, cam.height - 1, n_px)])
    err = ray_angle_errors_deg(fit_model, true_model, cmds, pix)
    return {"max_deg": float(err.max()), "mean_deg": float(err.mean())}
