"""Event camera <-> frame camera alignment: event-camera intrinsics and the extrinsics to the wide frame camera.

An event camera sees no static board, so the board *blinks* (a screen or a
backlit board switched on and off; on the twin it is placed and removed):
summing each pixel's event polarities over the "on" edge minus the "off"
edge gives an image proportional to the log-contrast of the board against
the background, where the checkerboard's corners are found as in any frame.
With the same board poses seen by the wide frame camera, OpenCV gives the
event camera's intrinsics (``calibrateCamera``) and the rigid motion between
the two cameras (``stereoCalibrate`` with both intrinsics fixed). Events
and frames then map pixel to pixel at a chosen depth (``EventFrameMap``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from foveate.calibration.board import BoardSpec, detect_corners
from foveate.calibration.calib_file import camera_section, header, load_calibration, save_calibration
from foveate.calibration.capture import twin_of
from foveate.calibration.capture_set import camera_from_mapping
from foveate.calibration.errors import CalibrationError
from foveate.calibration.galvo_geometry import PinholeCamera
from foveate.calibration.intrinsics import calibrate_intrinsics, intrinsics_board_poses
from foveate.system.types import EventPacket


def blink_frame(on_edge: EventPacket, off_edge: EventPacket, clip_events: float | None = None) -> np.ndarray:
    """A grey image (H, W) uint8 of what blinked: sum of polarities at switch-on minus those at switch-off.

    Dark parts of the board (black squares on a brighter background) give
    OFF events when the board appears, bright ones ON events. The signed
    count is mapped to 0..255 with the background (no change) mid-grey.
    """
    w, h = on_edge.sensor_size
    img = np.zeros((h, w), np.float32)
    for packet, sign in ((on_edge, 1.0), (off_edge, -1.0)):
        ev = packet.events
        np.add.at(img, (ev["y"].astype(np.intp), ev["x"].astype(np.intp)), sign * (2.0 * ev["p"] - 1.0))
    lim = clip_events if clip_events is not None else max(1.0, float(np.percentile(np.abs(img), 99)))
    return np.clip(127.5 + 127.5 * img / lim, 0, 255).astype(np.uint8)


@dataclass
class EventFrameMap:
    """Pixel-to-pixel map between an event camera and a frame camera, exact for points at ``depth_mm``.

    ``R_fe``, ``t_fe_mm``: event-camera frame -> frame-camera frame. Depth is
    measured along the event camera's optical axis (event -> frame) or the
    frame camera's (frame -> event).
    """

    event_camera: PinholeCamera
    frame_camera: PinholeCamera
    R_fe: np.ndarray
    t_fe_mm: np.ndarray

    def event_to_frame(self, uv, depth_mm: float) -> np.ndarray:
        """(N, 2) event pixels -> (N, 2) frame pixels of the scene points at ``depth_mm``."""
        r = self.event_camera.normalised_rays(np.asarray(uv, float).reshape(-1, 2))
        X = r / r[:, 2:3] * depth_mm
        return self.frame_camera.project_cam(X @ self.R_fe.T + self.t_fe_mm)

    def frame_to_event(self, uv, depth_mm: float) -> np.ndarray:
        """(N, 2) frame pixels -> (N, 2) event pixels of the scene points at ``depth_mm``."""
        r = self.frame_camera.normalised_rays(np.asarray(uv, float).reshape(-1, 2))
        X = r / r[:, 2:3] * depth_mm
        return self.event_camera.project_cam((X - self.t_fe_mm) @ self.R_fe)


@dataclass
class AlignmentResult:
    map: EventFrameMap
    event_rms_px: float
    stereo_rms_px: float
    views: int
    guidance: list[str]


def calibrate_alignment(event_corners: list[np.ndarray], frame_corners: list[np.ndarray], board: BoardSpec,
                        event_size: tuple[int, int], frame_camera: PinholeCamera,
                        event_names: list[str] | None = None) -> AlignmentResult:
    """Event intrinsics from the blink frames, then the event -> frame extrinsics with both intrinsics fixed."""
    if len(event_corners) != len(frame_corners):
        raise CalibrationError("event and frame views must come in pairs (same board poses)")
    names = event_names or [f"view {i}" for i in range(len(event_corners))]
    intr = calibrate_intrinsics(names, event_corners, board, event_size)
    obj = board.object_points().astype(np.float32)
    ev_cam = intr.camera
    rms, _, _, _, _, R, T, _, _ = cv2.stereoCalibrate(
        [obj] * len(event_corners), [c.astype(np.float32).reshape(-1, 1, 2) for c in event_corners],
        [c.astype(np.float32).reshape(-1, 1, 2) for c in frame_corners],
        ev_cam.K, np.asarray(ev_cam.dist, float), frame_camera.K, np.asarray(frame_camera.dist, float),
        event_size, flags=cv2.CALIB_FIX_INTRINSIC,
        criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12))
    return AlignmentResult(EventFrameMap(ev_cam, frame_camera, R, np.ravel(T)), intr.rms_px, float(rms),
                           len(event_corners), intr.guidance)


def save_alignment(res: AlignmentResult, out: Path, source: dict, depth_mm: float | None) -> Path:
    m = res.map
    data = header("event_alignment", source, {"event_intrinsics_rms_px": round(res.event_rms_px, 4),
                                              "stereo_rms_px": round(res.stereo_rms_px, 4), "views": res.views},
                  res.guidance)
    data.update({"event_camera": camera_section(m.event_camera), "frame_camera": camera_section(m.frame_camera),
                 "R_fe": m.R_fe.tolist(), "t_fe_mm": [float(v) for v in m.t_fe_mm], "depth_mm": depth_mm})
    return save_calibration(out, data)


def load_alignment(path: str | Path) -> EventFrameMap:
    cal = load_calibration(path, expect_kind="event_alignment")
    d = cal.data
    R = np.asarray(d.R_fe, float)
    if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        from foveate.system.errors import ConfigError

        raise ConfigError(f"{path}: R_fe: expected a 3x3 rotation matrix")
    return EventFrameMap(camera_from_mapping(d.event_camera.model_dump(), str(path), ("event_camera",)),
                         camera_from_mapping(d.frame_camera.model_dump(), str(path), ("frame_camera",)),
                         R, np.asarray(d.t_fe_mm, float))


def calibrate_events_rig(rig, out: str | Path, views: int = 15, depth_mm: float = 3000.0, seed: int = 0,
                         board: BoardSpec | None = None, blink_s: float = 0.02, frame_camera: PinholeCamera | None = None) -> dict:
    """On the twin: blink a board at ``views`` poses, calibrate the event camera and its alignment to the wide camera.

    The wide camera's intrinsics come from ``frame_camera`` (a prior
    ``calibrate intrinsics``) or, on the twin, from its own board views here.
    """
    twin = twin_of(rig)
    if twin is None:
        raise CalibrationError("'calibrate events' drives the board itself only on the twin; on a live rig record "
                               "blink_frame images of a blinking board and use calibrate_alignment")
    ev_dev, fr_dev = rig.role("wide_events"), rig.role("wide_camera")
    ev_true, T_ew = twin.camera_model(ev_dev.name)
    fr_true, _ = twin.camera_model(fr_dev.name)
    dist = 2500.0
    if board is None:
        fov_w = 2 * dist * ev_true.width / 2 / ev_true.K[0, 0]
        board = BoardSpec(9, 6, round(0.35 * fov_w / 10, 0))
    poses = intrinsics_board_poses(ev_true, board, views, dist, seed)
    T_we = np.linalg.inv(T_ew)
    ev_corners, fr_corners, names, missing = [], [], [], []
    clock = rig.clock
    ev_dev.read()  # start a fresh packet sequence
    for k, T_eb in enumerate(poses):
        twin.set_board(None)
        clock.sleep_s(blink_s)
        ev_dev.read()
        twin.set_board(T_we @ T_eb, board.cols, board.rows, board.square_mm)
        clock.sleep_s(blink_s)
        on = ev_dev.read()
        frame = fr_dev.read().image
        twin.set_board(None)
        clock.sleep_s(blink_s)
        off = ev_dev.read()
        img = blink_frame(on, off)
        uv_e = detect_corners(img, board)
        uv_f = detect_corners(frame, board)
        if uv_e is None or uv_f is None:
            missing.append(f"v{k:02d} ({'events' if uv_e is None else 'frame'})")
            continue
        ev_corners.append(uv_e)
        fr_corners.append(uv_f)
        names.append(f"v{k:02d}")
        if k == 0:
            cv2.imwrite(str(Path(f"{Path(out).with_suffix('')}_blink.png")), img)
    if frame_camera is None:
        frame_camera = calibrate_intrinsics(names, fr_corners, board, (fr_dev.width, fr_dev.height)).camera
    res = calibrate_alignment(ev_corners, fr_corners, board, ev_dev.sensor_size, frame_camera, names)
    source = {"rig": rig.config.name, "event_camera": ev_dev.name, "frame_camera": fr_dev.name, "views": views,
              "views_used": len(names), "board": board.as_dict(), "not_found": missing}
    save_alignment(res, Path(out), source, depth_mm)
    return {"event_intrinsics_rms_px": round(res.event_rms_px, 4), "stereo_rms_px": round(res.stereo_rms_px, 4),
            "views_used": len(names), "not_found": missing, "out": str(out)}
