"""True camera geometry of the twin: the project's models plus small deterministic assembly errors.

Fixed cameras are ``PinholeCamera``s with OpenCV distortion at a pose in the
rig frame (x right, y down, z forward, mm); the galvo-steered camera is a
``GalvoCamera``: the nominal XY scanner of ``calibration.galvo_geometry``
with each part slightly off (mirror axes and normals tilted, mirror
positions shifted, camera pose and intrinsics perturbed) and the mirrors
carrying the galvo axes' gain and offset errors. Errors are drawn from a seed
(``error_scale`` 0 gives the ideal design), so the twin is ground truth a
calibration can be checked against.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import numpy as np

from foveate.calibration.galvo_geometry import (
    GalvoCamera, Mirror, PinholeCamera, direction_to_az_el_deg, nominal_xy_galvo_camera, unit,
)

#: 1-sigma assembly errors at error_scale 1.
ROT_SIGMA_DEG = 0.15  # camera mounting
POS_SIGMA_MM = 0.4
FOCAL_SIGMA = 0.003  # relative
PP_SIGMA_PX = 1.5
MIRROR_TILT_SIGMA_DEG = 0.08
MIRROR_POS_SIGMA_MM = 0.15
MIRROR_SURFACE_SIGMA_MM = 0.08


def stable_seed(*parts) -> int:
    """A seed from strings/ints that is the same in every Python process (unlike ``hash``)."""
    return zlib.crc32("/".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def rotation_pan_tilt_roll(pan_deg: float, tilt_deg: float, roll_deg: float) -> np.ndarray:
    """Camera-to-rig rotation R_wc: pan turns the optical axis right, tilt up, roll about the optical axis."""
    p, t, r = (math.radians(v) for v in (pan_deg, tilt_deg, roll_deg))
    Ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(t), -math.sin(t)], [0, math.sin(t), math.cos(t)]])
    Rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return Ry @ Rx @ Rz


def _perturb_intrinsics(cam: PinholeCamera, rng, s: float) -> PinholeCamera:
    K = cam.K.copy()
    df = 1.0 + rng.normal(0, FOCAL_SIGMA * s)
    K[0, 0] *= df
    K[1, 1] *= df * (1.0 + rng.normal(0, 0.0005 * s))
    K[0, 2] += rng.normal(0, PP_SIGMA_PX * s)
    K[1, 2] += rng.normal(0, PP_SIGMA_PX * s)
    return PinholeCamera(K, cam.width, cam.height, np.asarray(cam.dist, float).copy())


def _small_rotation(rng, sigma_deg: float) -> np.ndarray:
    v = rng.normal(0, math.radians(sigma_deg), 3)
    ang = float(np.linalg.norm(v))
    if ang == 0.0:
        return np.eye(3)
    k = v / ang
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(ang) * Kx + (1 - math.cos(ang)) * Kx @ Kx


def fixed_camera(width: int, height: int, hfov_deg: float, dist, position_mm, rotation_deg, seed: int,
                 error_scale: float = 1.0) -> tuple[PinholeCamera, np.ndarray]:
    """A fixed camera's true model: (PinholeCamera, T_cw 4x4 rig -> camera)."""
    rng = np.random.default_rng(seed)
    cam = _perturb_intrinsics(PinholeCamera.from_fov(width, height, hfov_deg, dist), rng, error_scale)
    R_wc = rotation_pan_tilt_roll(*rotation_deg) @ _small_rotation(rng, ROT_SIGMA_DEG * error_scale)
    C = np.asarray(position_mm, float) + rng.normal(0, POS_SIGMA_MM * error_scale, 3)
    T = np.eye(4)
    T[:3, :3] = R_wc.T
    T[:3, 3] = -R_wc.T @ C
    return cam, T


def _perturb_mirror(m: Mirror, rng, s: float, gain: float, offset_deg: float) -> Mirror:
    axis = _small_rotation(rng, MIRROR_TILT_SIGMA_DEG * s) @ m.axis_dir
    normal0 = _small_rotation(rng, MIRROR_TILT_SIGMA_DEG * s) @ m.normal0
    point = m.axis_point + rng.normal(0, MIRROR_POS_SIGMA_MM * s, 3)
    return Mirror(point, unit(axis), unit(normal0), float(rng.normal(0, MIRROR_SURFACE_SIGMA_MM * s)), gain, offset_deg)


def galvo_camera(width: int, height: int, hfov_deg: float, dist, roll_deg: float, gains: tuple[float, float],
                 offsets_deg: tuple[float, float], seed: int, error_scale: float = 1.0,
                 camera_to_mirror1_mm: float = 25.0, mirror_gap_mm: float = 12.0) -> GalvoCamera:
    """The search camera's true ``GalvoCamera``: nominal XY scanner + assembly errors + axis gain/offset.

    ``roll_deg`` turns the camera about its optical axis (the nominal design's
    image is rotated 90 deg against the scene; a roll of -90 makes it upright).
    """
    rng = np.random.default_rng(seed)
    cam = PinholeCamera.from_fov(width, height, hfov_deg, dist)
    g = nominal_xy_galvo_camera(cam, camera_to_mirror1_mm, mirror_gap_mm)
    T_cw = _roll(g.T_cw, roll_deg)
    if error_scale == 0.0:
        m1 = replace(g.mirror1, gain=gains[0], offset_deg=offsets_deg[0])
        m2 = replace(g.mirror2, gain=gains[1], offset_deg=offsets_deg[1])
        return GalvoCamera(cam, m1, m2, T_cw)
    cam = _perturb_intrinsics(cam, rng, error_scale)
    m1 = _perturb_mirror(g.mirror1, rng, error_scale, gains[0], offsets_deg[0])
    m2 = _perturb_mirror(g.mirror2, rng, error_scale, gains[1], offsets_deg[1])
    R_err = _small_rotation(rng, ROT_SIGMA_DEG * error_scale)
    T = T_cw.copy()
    C = -T[:3, :3].T @ T[:3, 3] + rng.normal(0, POS_SIGMA_MM * error_scale, 3)
    R_cw = R_err @ T[:3, :3]
    T[:3, :3] = R_cw
    T[:3, 3] = -R_cw @ C
    return GalvoCamera(cam, m1, m2, T)


def _roll(T_cw: np.ndarray, roll_deg: float) -> np.ndarray:
    if roll_deg == 0.0:
        return T_cw
    r = math.radians(roll_deg)
    Rz = np.eye(4)
    Rz[:2, :2] = [[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]]
    return Rz @ T_cw


def aim_commands(gcam: GalvoCamera, direction, start=(0.0, 0.0), tol_deg: float = 1e-7) -> tuple[float, float]:
    """Mirror commands (deg) whose line of sight points along rig-frame ``direction`` (Newton, numeric Jacobian).

    Ground-truth helper for tests and tools; raises ``ValueError`` if it does not converge.
    """
    d = unit(direction)
    goal = np.array([v[0] for v in direction_to_az_el_deg(d[None, :])])
    x = np.array(start, dtype=np.float64)
    if not np.any(x):
        x = np.array([-goal[0] / 2, goal[1] / 2])  # nominal: 2 deg of view per mechanical deg
    for _ in range(30):
        f = _los_az_el(gcam, x) - goal
        if np.max(np.abs(f)) < tol_deg:
            return float(x[0]), float(x[1])
        J = np.empty((2, 2))
        h = 1e-4
        for k in range(2):
            dx = np.zeros(2)
            dx[k] = h
            J[:, k] = (_los_az_el(gcam, x + dx) - _los_az_el(gcam, x - dx)) / (2 * h)
        x = x - np.linalg.solve(J, f)
    raise ValueError(f"aim_commands: no convergence towards az/el {goal.tolist()}")


def _los_az_el(gcam: GalvoCamera, x: np.ndarray) -> np.ndarray:
    _, d = gcam.line_of_sight(float(x[0]), float(x[1]))
    az, el = direction_to_az_el_deg(d[None, :])
    return np.array([az[0], el[0]])
