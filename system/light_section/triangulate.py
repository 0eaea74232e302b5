"""Triangulation: stripe pixels -> rays of the dynamic camera -> points on the dynamic laser sheet.

A pixel seen at camera-galvo commands ``(tx, ty)`` is the ray from the virtual
camera centre (``GalvoCamera.pixel_rays``); the laser sheet at laser-galvo
command ``a`` is ``DynamicLaser.sheet(a)``. The point is their intersection;
rays that meet the sheet at less than ``min_angle_deg`` are rejected (grazing:
a small angle error becomes a large depth error). Every point keeps where it
came from: view index, laser command, pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foveate.calibration.galvo_geometry import GalvoCamera
from foveate.calibration.light_section.laser_model import DynamicLaser

#: One reconstructed point: position (mm, rig frame), stripe peak, and its source.
POINT_DTYPE = np.dtype([
    ("x", "<f8"), ("y", "<f8"), ("z", "<f8"),
    ("intensity", "<f4"),
    ("view", "<u4"),
    ("laser_deg", "<f8"),
    ("u", "<f4"), ("v", "<f4"),
])


@dataclass(frozen=True)
class ViewRays:
    """The virtual camera of one view: centre (3,) and rotation used to turn normalised rays into rig rays."""

    centre: np.ndarray
    R: np.ndarray  # world -> virtual camera rotation
    commands_deg: tuple[float, float]

    @staticmethod
    def of(camera: GalvoCamera, theta_x_deg: float, theta_y_deg: float) -> "ViewRays":
        T = camera.virtual_extrinsics(theta_x_deg, theta_y_deg)
        R, t = T[:3, :3], T[:3, 3]
        return ViewRays(-R.T @ t, R.copy(), (float(theta_x_deg), float(theta_y_deg)))


def intersect_sheet(centre: np.ndarray, dirs: np.ndarray, normal: np.ndarray, d: float,
                    min_angle_deg: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 3) where rays ``centre + s dirs`` meet the plane ``normal . x = d``, and a mask (N,).

    The mask rejects rays within ``min_angle_deg`` of the plane and points behind the centre.
    """
    den = dirs @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (d - normal @ centre) / den
    ok = (np.abs(den) >= np.sin(np.deg2rad(min_angle_deg))) & (s > 0)
    X = centre + np.where(ok, s, 0.0)[:, None] * dirs
    return X, ok


class Triangulator:
    """Pixels + galvo commands -> 3D points, for one calibrated camera-galvo and laser model."""

    def __init__(self, camera: GalvoCamera, laser: DynamicLaser, min_angle_deg: float = 5.0) -> None:
        self.camera = camera
        self.laser = laser
        self.min_angle_deg = float(min_angle_deg)
        self._view: ViewRays | None = None
        self._no_distortion = not np.any(np.asarray(camera.camera.dist, np.float64))

    def view(self, theta_x_deg: float, theta_y_deg: float) -> ViewRays:
        v = self._view
        if v is None or v.commands_deg != (float(theta_x_deg), float(theta_y_deg)):
            v = self._view = ViewRays.of(self.camera, theta_x_deg, theta_y_deg)
        return v

    def rays(self, uv: np.ndarray, theta_x_deg: float, theta_y_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Virtual centre (3,) and unit rig-frame directions (N, 3) of pixels (N, 2)."""
        v = self.view(theta_x_deg, theta_y_deg)
        cam = self.camera.camera
        if self._no_distortion:  # closed form; cv2.undistortPoints iterates even for zero distortion
            K = cam.K
            uv = np.asarray(uv, np.float64).reshape(-1, 2)
            y = (uv[:, 1] - K[1, 2]) / K[1, 1]
            x = (uv[:, 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
            r = np.stack([x, y, np.ones_like(x)], axis=1)
            r /= np.linalg.norm(r, axis=1, keepdims=True)
        else:
            r = cam.normalised_rays(uv)
        return v.centre, r @ v.R

    def points(self, uv: np.ndarray, theta_x_deg: float, theta_y_deg: float,
               laser_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """3D points (N, 3) of stripe pixels (N, 2) and the mask (N,) of those kept."""
        uv = np.asarray(uv, np.float64).reshape(-1, 2)
        if uv.shape[0] == 0:
            return np.zeros((0, 3)), np.zeros(0, bool)
        c, dirs = self.rays(uv, theta_x_deg, theta_y_deg)
        n, d = self.laser.sheet(laser_deg)
        return intersect_sheet(c, dirs, n, d, self.min_angle_deg)

    def records(self, uv: np.ndarray, intensity: np.ndarray, view: int, theta_x_deg: float,
                theta_y_deg: float, laser_deg: float) -> np.ndarray:
        """The kept points as a ``POINT_DTYPE`` array carrying view, laser command and pixel."""
        X, ok = self.points(uv, theta_x_deg, theta_y_deg, laser_deg)
        k = np.count_nonzero(ok)
        out = np.empty(k, POINT_DTYPE)
        out["x"], out["y"], out["z"] = X[ok].T
        out["intensity"] = np.asarray(intensity, np.float32)[ok]
        out["view"] = view
        out["laser_deg"] = laser_deg
        out["u"], out["v"] = np.asarray(uv, np.float32)[ok].T
        return out
