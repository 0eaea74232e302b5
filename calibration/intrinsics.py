"""Camera intrinsics from checkerboard views (Zhang's method, OpenCV), with coverage guidance.

Beyond the fit, a user needs to know whether the views were good enough:
which parts of the image never saw a corner (distortion there is
extrapolated), whether the board was tilted enough (the focal length and
principal point come from perspective), which views disagree with the rest,
and how uncertain each parameter is (OpenCV's standard deviations).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from foveate.calibration.board import BoardSpec, detect_corners
from foveate.calibration.calib_file import camera_section, file_sha256, header, save_calibration
from foveate.calibration.capture import Ask, CaptureSummary, twin_of
from foveate.calibration.capture_set import CaptureWriter, load_capture_dir
from foveate.calibration.errors import CalibrationError
from foveate.calibration.galvo_geometry import PinholeCamera, rotate_about, unit

log = logging.getLogger(__name__)

COVERAGE_GRID = (4, 3)  # image cells (columns, rows) that should each see corners
MIN_VIEWS = 5


@dataclass
class IntrinsicsResult:
    camera: PinholeCamera
    rms_px: float
    per_view: list[dict]
    std: dict[str, float]
    coverage: dict[str, Any]
    guidance: list[str] = field(default_factory=list)
    out: Path | None = None

    def summary(self) -> dict:
        c = camera_section(self.camera)
        return {"rms_px": round(self.rms_px, 4), "views": len(self.per_view), "camera": c,
                "std": {k: float(f"{v:.3g}") for k, v in self.std.items()}, "coverage": self.coverage,
                "guidance": self.guidance, "out": str(self.out) if self.out else None}

    def text(self) -> str:
        c = camera_section(self.camera)
        lines = [
            f"intrinsics: RMS {self.rms_px:.3f} px over {len(self.per_view)} views",
            f"  fx {c['fx']:.2f} (+-{self.std.get('fx', 0):.2f})  fy {c['fy']:.2f} (+-{self.std.get('fy', 0):.2f})  "
            f"cx {c['cx']:.2f} (+-{self.std.get('cx', 0):.2f})  cy {c['cy']:.2f} (+-{self.std.get('cy', 0):.2f}) px",
            f"  dist [k1 k2 p1 p2 k3] = [{', '.join(f'{v:+.5f}' for v in c['dist'])}]",
            f"  image cells with corners: {self.coverage['cells_covered']}/{self.coverage['cells_total']}, "
            f"max board tilt {self.coverage['max_tilt_deg']:.0f} deg",
            "  worst views: " + ", ".join(f"{v['image']} {v['rms_px']:.3f} px"
                                          for v in sorted(self.per_view, key=lambda v: -v["rms_px"])[:5]),
        ]
        lines += [f"  advice: {g}" for g in self.guidance]
        if self.out:
            lines.append(f"wrote {self.out}")
        return "\n".join(lines)


def _coverage(corners: list[np.ndarray], rvecs, size: tuple[int, int]) -> tuple[dict, list[str]]:
    w, h = size
    nx, ny = COVERAGE_GRID
    hit = np.zeros((ny, nx), int)
    for uv in corners:
        ix = np.clip((uv[:, 0] / w * nx).astype(int), 0, nx - 1)
        iy = np.clip((uv[:, 1] / h * ny).astype(int), 0, ny - 1)
        np.add.at(hit, (iy, ix), 1)
    tilts = []
    for r in rvecs:
        R = cv2.Rodrigues(np.asarray(r, float))[0]
        tilts.append(float(np.degrees(np.arccos(min(1.0, abs(R[2, 2]))))))
    names_y = ["top", "middle", "bottom"] if ny == 3 else [f"row {i}" for i in range(ny)]
    names_x = ["left", "centre-left", "centre-right", "right"] if nx == 4 else [f"column {i}" for i in range(nx)]
    empty = [f"{names_y[i]} {names_x[j]}" for i in range(ny) for j in range(nx) if hit[i, j] == 0]
    guidance = []
    if empty:
        guidance.append("no corners in the image's " + ", ".join(empty) + ": show the board there "
                        "(distortion is extrapolated where no corner was seen)")
    n_tilted = sum(t > 20 for t in tilts)
    if n_tilted < 3:
        guidance.append(f"only {n_tilted} views tilt the board by more than 20 deg: add views tilted 30-45 deg "
                        "about both axes (focal length and principal point come from perspective)")
    cov = {"cells_covered": int((hit > 0).sum()), "cells_total": nx * ny, "cell_corner_counts": hit.tolist(),
           "max_tilt_deg": round(max(tilts), 1) if tilts else 0.0, "views_tilted_over_20_deg": n_tilted}
    return cov, guidance


def calibrate_intrinsics(names: list[str], corners: list[np.ndarray], board: BoardSpec, size: tuple[int, int],
                         fix_k3: bool = True) -> IntrinsicsResult:
    """Zhang's method on detected corners; per-view RMS, parameter std devs, coverage advice."""
    if len(corners) < MIN_VIEWS:
        raise CalibrationError(f"too few views with a detected board: {len(corners)} (need at least {MIN_VIEWS}, better 15+)")
    obj = board.object_points().astype(np.float32)
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    rms, K, dist, rvecs, tvecs, std_in, _, per_view = cv2.calibrateCameraExtended(
        [obj] * len(corners), [c.astype(np.float32).reshape(-1, 1, 2) for c in corners], size, None, None, flags=flags,
        criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12))
    std_in = np.ravel(std_in)
    std = dict(zip(("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3"), map(float, std_in[:9])))
    cam = PinholeCamera(K, size[0], size[1], np.ravel(dist)[:5].astype(float))
    views = [{"image": n, "rms_px": round(float(e), 4)} for n, e in zip(names, np.ravel(per_view))]
    cov, guidance = _coverage(corners, rvecs, size)
    med = float(np.median([v["rms_px"] for v in views]))
    bad = [v["image"] for v in views if v["rms_px"] > 3 * med and v["rms_px"] > 0.3]
    if bad:
        guidance.append(f"views with 3x the median error (blur, wrong detection?): {', '.join(bad[:5])}; consider removing them")
    if std["fx"] > 0.005 * K[0, 0]:
        guidance.append(f"focal length is uncertain (+-{std['fx']:.1f} px): add tilted views and views near the image corners")
    return IntrinsicsResult(cam, float(rms), views, std, cov, guidance)


def calibrate_intrinsics_dir(capture_dir: str | Path, out: str | Path | None, fix_k3: bool = True,
                             allow_missing: bool = False, progress: bool = False) -> IntrinsicsResult:
    """Intrinsics from a capture directory (``captures.csv`` needs only an ``image`` column)."""
    cs = load_capture_dir(capture_dir, require_angles=False)
    names, corners, missing, size = [], [], [], None
    for row in tqdm(cs.rows, desc="detecting corners", unit="img", disable=not progress, leave=False):
        img = cs.read_image(row)
        s = (img.shape[1], img.shape[0])
        if size is None:
            size = s
        elif s != size:
            raise CalibrationError(f"{cs.image_path(row)}: image is {s[0]}x{s[1]}, earlier ones {size[0]}x{size[1]}")
        uv = detect_corners(img, cs.board)
        if uv is None:
            missing.append(str(cs.image_path(row)))
            continue
        names.append(row.image)
        corners.append(uv)
    if missing and not allow_missing:
        raise CalibrationError(f"{missing[0]}: board ({cs.board.cols}x{cs.board.rows} inner corners) not found"
                               + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                               + "; check board.yaml or pass --allow-missing to skip such images")
    res = calibrate_intrinsics(names, corners, cs.board, size, fix_k3)
    if out is not None:
        source = {"captures": str(cs.root.resolve()), "captures_sha256": file_sha256(cs.csv_path),
                  "images": len(cs.rows), "views_used": len(names), "board": cs.board.as_dict(),
                  "missing_board": missing}
        data = header("camera", source, {"rms_px": round(res.rms_px, 5), "views": len(names),
                                         "per_view": res.per_view, "std": res.std}, res.guidance)
        data.update({"camera": camera_section(res.camera), "coverage": res.coverage})
        res.out = save_calibration(out, data)
    return res


# ------------------------------------------------------------------------------ capture
def intrinsics_board_poses(camera: PinholeCamera, board: BoardSpec, views: int, distance_mm: float, seed: int = 0):
    """Board poses (4x4 board -> camera) that cover the image: a grid of positions, tilts up to 40 deg."""
    rng = np.random.default_rng(seed)
    w, h = camera.width, camera.height
    nx, ny = COVERAGE_GRID
    cells = [((i + 0.5) / nx * w, (j + 0.5) / ny * h) for j in range(ny) for i in range(nx)]
    out = []
    c_board = np.array([(board.cols - 1) / 2 * board.square_mm, (board.rows - 1) / 2 * board.square_mm, 0.0])
    # keep the whole printed board (pattern plus a one-square margin, tilted) inside the image
    half_w = 0.5 * (board.cols + 3) * board.square_mm / distance_mm * camera.K[0, 0] * 1.25
    half_h = 0.5 * (board.rows + 3) * board.square_mm / distance_mm * camera.K[1, 1] * 1.25
    for k in range(views):
        u, v = cells[k % len(cells)] if k < len(cells) else (rng.uniform(0.25, 0.75) * w, rng.uniform(0.25, 0.75) * h)
        u = float(np.clip(u, min(half_w, w / 2), max(w - half_w, w / 2)))
        v = float(np.clip(v, min(half_h, h / 2), max(h - half_h, h / 2)))
        ray = camera.normalised_rays(np.array([[u, v]]))[0]
        centre = ray / ray[2] * distance_mm * rng.uniform(0.95, 1.1)
        tilt = rng.uniform(15, 40) * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        R = np.eye(3)
        R = rotate_about(R[:, 0], np.deg2rad(tilt[0]), R.T).T
        R = rotate_about(R[:, 1], np.deg2rad(tilt[1]), R.T).T
        R = np.stack([unit(R[:, 0]), unit(R[:, 1]), unit(np.cross(R[:, 0], R[:, 1]))], axis=1)
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = centre - R @ c_board
        out.append(T)
    return out


def capture_intrinsics(rig, out: str | Path, board: BoardSpec | None = None, camera_role: str = "wide_camera",
                       views: int = 20, seed: int = 0, ask: Ask | None = None, progress: bool = True) -> CaptureSummary:
    """Capture board views for intrinsics: the twin places the board; on a live rig the user does, guided by cell."""
    cam_dev = rig.role(camera_role)
    twin = twin_of(rig)
    meta = {"rig": rig.config.name, "camera": cam_dev.name, "mode": "twin" if twin else "live"}
    if twin is not None:
        true_cam, T_cw = twin.camera_model(cam_dev.name)
        dist_mm = 2000.0
        if board is None:
            fov_w = 2 * dist_mm * true_cam.width / 2 / true_cam.K[0, 0]
            board = BoardSpec(9, 6, round(0.25 * fov_w / 12, 1))
        poses = intrinsics_board_poses(true_cam, board, views, dist_mm, seed)
    else:
        if board is None:
            raise CalibrationError("a live capture needs --board COLSxROWS and --square-mm (the printed board)")
        poses = [None] * views
    names_y = ["top", "middle", "bottom"]
    names_x = ["left", "centre-left", "centre-right", "right"]
    skipped = []
    with CaptureWriter(out, board, None, meta) as writer:
        for k, T_cb in enumerate(tqdm(poses, desc="capturing", unit="img", disable=not progress or twin is None, leave=False)):
            if twin is not None:
                T_wc = np.linalg.inv(T_cw)
                twin.set_board(T_wc @ T_cb, board.cols, board.rows, board.square_mm)
            else:
                cell = k % 12
                where = f"{names_y[cell // 4]} {names_x[cell % 4]}" if k < 12 else "anywhere, tilted differently"
                answer = ask(f"[view {k + 1}/{views}] put the board in the image's {where}, tilted 20-40 deg; Enter "
                             "(s = skip, q = stop): ").strip().lower() if ask else ""
                if answer == "q":
                    break
                if answer == "s":
                    skipped.append(f"v{k:02d}")
                    continue
            frame = cam_dev.read()
            writer.add(frame.image, f"v{k:02d}", 0.0, 0.0)
        if twin is not None:
            twin.set_board(None)
        n = writer.count
    return CaptureSummary(Path(out), n, n, skipped)
