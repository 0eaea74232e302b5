"""Geometry of cameras and lasers seen through galvo mirrors.

Frames and units: lengths in mm, angles in degrees at the API (radians inside),
points as (N, 3) arrays, pixels as (N, 2). The world frame of a galvo camera
is the real camera's frame (OpenCV convention: x right, y down, z forward)
unless ``T_cw`` says otherwise.

A plane (n, d) is {x : n.x = d} with |n| = 1. Reflecting in it is the 4x4
``[[I - 2 n n^T, 2 d n], [0, 1]]``. A scene point X reaches the camera via
mirror 2 then mirror 1, so the camera sees ``M1 M2 X``: the two reflections
compose to a proper rigid motion, i.e. a *virtual camera* with extrinsics
``T_cw M1 M2`` on which OpenCV's ``projectPoints``/``solvePnP`` work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def rotate_about(axis: np.ndarray, angle_rad: float, v: np.ndarray) -> np.ndarray:
    """Rodrigues rotation of vector(s) ``v`` (3,) or (N, 3) about unit ``axis`` by ``angle_rad``."""
    k = unit(axis)
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    v = np.asarray(v, dtype=np.float64)
    return v * c + np.cross(k, v) * s + np.outer(v @ k, k).reshape(v.shape) * (1 - c)


def reflection_matrix(n: np.ndarray, d: float) -> np.ndarray:
    """4x4 homogeneous reflection in the plane n.x = d (n unit); an involution with det -1."""
    n = np.asarray(n, dtype=np.float64)
    M = np.eye(4)
    M[:3, :3] -= 2.0 * np.outer(n, n)
    M[:3, 3] = 2.0 * d * n
    return M


def transform_plane(T: np.ndarray, n: np.ndarray, d: float) -> tuple[np.ndarray, float]:
    """Image of the plane (n, d) under the rigid or reflective 4x4 map ``T``: returns (n', d')."""
    A, t = T[:3, :3], T[:3, 3]
    # Points map x' = A x + t; A is orthogonal (det +-1), so normals map by A.
    n2 = A @ np.asarray(n, dtype=np.float64)
    return n2, float(d + n2 @ t)


@dataclass(frozen=True)
class Mirror:
    """One galvo mirror.

    The mechanical angle is ``gain * command_deg + offset_deg``; the mirror
    normal is ``normal0`` rotated about ``axis_dir`` by that angle, and the
    reflecting surface sits ``surface_offset_mm`` from the axis along the normal.
    """

    axis_point: np.ndarray  # (3,) mm, a point on the rotation axis
    axis_dir: np.ndarray  # (3,) unit
    normal0: np.ndarray  # (3,) unit, normal at zero angle (ideally perpendicular to axis_dir)
    surface_offset_mm: float = 0.0
    gain: float = 1.0
    offset_deg: float = 0.0

    def angle_deg(self, command_deg: float) -> float:
        return self.gain * command_deg + self.offset_deg

    def normal(self, command_deg: float) -> np.ndarray:
        return rotate_about(self.axis_dir, np.deg2rad(self.angle_deg(command_deg)), self.normal0)

    def plane(self, command_deg: float) -> tuple[np.ndarray, float]:
        """(n, d) of the reflecting surface at ``command_deg``."""
        n = self.normal(command_deg)
        p = np.asarray(self.axis_point, dtype=np.float64) + self.surface_offset_mm * n
        return n, float(n @ p)

    def matrix(self, command_deg: float) -> np.ndarray:
        """4x4 reflection at ``command_deg``."""
        return reflection_matrix(*self.plane(command_deg))


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole camera with OpenCV's 5-coefficient distortion (k1, k2, p1, p2, k3)."""

    K: np.ndarray  # (3, 3)
    width: int
    height: int
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))

    @staticmethod
    def from_fov(width: int, height: int, hfov_deg: float, dist=None) -> "PinholeCamera":
        f = (width / 2) / np.tan(np.deg2rad(hfov_deg) / 2)
        K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
        return PinholeCamera(K, width, height, np.zeros(5) if dist is None else np.asarray(dist, float))

    def project_cam(self, Xc: np.ndarray) -> np.ndarray:
        """Camera-frame points (N, 3) -> pixels (N, 2), same model as ``cv2.projectPoints``."""
        Xc = np.asarray(Xc, dtype=np.float64).reshape(-1, 3)
        x = Xc[:, 0] / Xc[:, 2]
        y = Xc[:, 1] / Xc[:, 2]
        k1, k2, p1, p2, k3 = (list(np.ravel(self.dist)) + [0.0] * 5)[:5]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        K = self.K
        return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=1)

    def normalised_rays(self, uv: np.ndarray) -> np.ndarray:
        """Pixels (N, 2) -> unit camera-frame ray directions (N, 3) (distortion removed)."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 1, 2)
        xy = cv2.undistortPoints(uv, self.K, np.asarray(self.dist, dtype=np.float64)).reshape(-1, 2)
        r = np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1)
        return r / np.linalg.norm(r, axis=1, keepdims=True)


@dataclass(frozen=True)
class GalvoCamera:
    """A fixed camera looking out through a two-mirror galvo (mirror 1 nearest the camera).

    ``T_cw`` (4x4) maps world points into the real camera frame. Commands are
    mechanical degrees: ``theta_x_deg`` for mirror 1, ``theta_y_deg`` for mirror 2.
    """

    camera: PinholeCamera
    mirror1: Mirror
    mirror2: Mirror
    T_cw: np.ndarray = field(default_factory=lambda: np.eye(4))

    def virtual_extrinsics(self, theta_x_deg: float, theta_y_deg: float) -> np.ndarray:
        """4x4 world -> virtual-camera transform ``T_cw M1 M2`` (a proper rigid motion)."""
        return self.T_cw @ self.mirror1.matrix(theta_x_deg) @ self.mirror2.matrix(theta_y_deg)

    def virtual_rvec_tvec(self, theta_x_deg: float, theta_y_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Rodrigues vector and translation of the virtual camera, for OpenCV."""
        T = self.virtual_extrinsics(theta_x_deg, theta_y_deg)
        rvec, _ = cv2.Rodrigues(T[:3, :3])
        return rvec.ravel(), T[:3, 3].copy()

    def project(self, X: np.ndarray, theta_x_deg: float, theta_y_deg: float) -> np.ndarray:
        """World points (N, 3) -> pixels (N, 2) at the given mirror commands."""
        T = self.virtual_extrinsics(theta_x_deg, theta_y_deg)
        X = np.asarray(X, dtype=np.float64).reshape(-1, 3)
        return self.camera.project_cam(X @ T[:3, :3].T + T[:3, 3])

    def pixel_rays(self, uv: np.ndarray, theta_x_deg: float, theta_y_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N, 2) -> (origin (3,), unit directions (N, 3)) of the world rays they see.

        The origin is the virtual camera centre; rays are valid beyond the outer mirror.
        """
        T = self.virtual_extrinsics(theta_x_deg, theta_y_deg)
        R, t = T[:3, :3], T[:3, 3]
        centre = -R.T @ t
        dirs = self.camera.normalised_rays(uv) @ R  # R^T r for each row
        return centre, dirs

    def line_of_sight(self, theta_x_deg: float, theta_y_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """World ray (origin, unit direction) through the principal point."""
        c = self.camera.K[:2, 2][None, :]
        origin, d = self.pixel_rays(c, theta_x_deg, theta_y_deg)
        return origin, d[0]

    def with_camera(self, camera: PinholeCamera) -> "GalvoCamera":
        return replace(self, camera=camera)


def nominal_xy_galvo_camera(
    camera: PinholeCamera, camera_to_mirror1_mm: float = 25.0, mirror_gap_mm: float = 12.0
) -> GalvoCamera:
    """An ideal XY scanner in the rig frame (x right, y down, z forward to the scene).

    Mirror 2 (outer) sits at the origin, turns about the rig x axis and folds
    the view from +y to +z: it tilts the line of sight vertically. Mirror 1
    sits ``mirror_gap_mm`` above it, turns about the rig z axis and folds the
    view from +x to +y: it pans horizontally. The camera sits
    ``camera_to_mirror1_mm`` before mirror 1, looking along +x. At zero
    commands the view points along +z, and each mechanical degree of either
    mirror turns the line of sight by two degrees about that mirror's axis.
    """
    g, D = float(mirror_gap_mm), float(camera_to_mirror1_mm)
    m2 = Mirror(np.array([0.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]), unit([0.0, -1.0, 1.0]))
    m1 = Mirror(np.array([0.0, -g, 0.0]), np.array([0.0, 0.0, 1.0]), unit([-1.0, 1.0, 0.0]))
    # Camera axes in the rig frame: z along +x_rig, y along +y_rig (down), x = y cross z.
    cz, cy = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    R_wc = np.stack([np.cross(cy, cz), cy, cz], axis=1)
    C = np.array([-D, -g, 0.0])
    T_cw = np.eye(4)
    T_cw[:3, :3] = R_wc.T
    T_cw[:3, 3] = -R_wc.T @ C
    return GalvoCamera(camera, m1, m2, T_cw)


def direction_to_az_el_deg(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rig-frame directions (N, 3) -> azimuth (right positive) and elevation (up positive) in degrees."""
    d = np.asarray(d, dtype=np.float64).reshape(-1, 3)
    az = np.degrees(np.arctan2(d[:, 0], d[:, 2]))
    el = np.degrees(np.arctan2(-d[:, 1], np.hypot(d[:, 0], d[:, 2])))
    return az, el
