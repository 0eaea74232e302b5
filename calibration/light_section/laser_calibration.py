"""Laser calibration: sheet planes from stripes on a board of known pose, then the dynamic laser model.

1. ``stripe_points``: the stripe pixels seen on a board are cast as rays of the
   (calibrated) galvo camera and intersected with the board plane (board
   normal = third column of its rotation, ``d = n . t``).
2. ``fit_plane``: per laser command, a plane through the points of all board
   placements (SVD, points beyond ``k_sigma`` dropped, repeated): one board
   gives only a line, so each command needs two or more depths or tilts.
3. ``fit_dynamic_laser``: the reflection model (``DynamicLaser``: emitted
   sheet, mirror axis, mirror normal and tilt, gain) fitted to *all* points at
   once by point-to-plane distance (``scipy.optimize.least_squares``, TRF,
   soft-L1 loss). Weak priors (``prior_deg``, ``prior_mm`` around the initial
   model) fix the directions the data cannot see: with the sheet containing
   the mirror axis every reflected sheet contains that axis, and turning the
   emitted sheet about it equals a mirror offset.

Gauges: the mirror's ``offset_deg`` and ``surface_offset_mm`` stay at their
initial values (an offset is the same as turning the zero-angle normal about
the axis; a surface offset the same as moving the axis along the normal).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from foveate.calibration.galvo_geometry import GalvoCamera, Mirror, rotate_about, unit
from foveate.calibration.light_section.laser_model import DynamicLaser
from foveate.calibration.light_section.shapes import ShapeFitError, fit_plane
from foveate.system.errors import FoveateError

log = logging.getLogger(__name__)

LASER_PARAMS = ("sheet_alpha", "sheet_beta", "sheet_d0_mm", "axis_alpha", "axis_beta", "axis_p1_mm", "axis_p2_mm",
                "mirror_phi_rad", "mirror_tilt_rad", "gain")


class LaserCalibrationError(FoveateError):
    """Not enough or inconsistent data for a laser calibration."""


@dataclass(frozen=True)
class StripeObservation:
    """Stripe pixels (K, 2) on one board placement, at one camera view and one laser command.

    ``board_T`` is the 4x4 board -> world pose in the camera model's world frame
    (the board's plane is its local z = 0). ``pose`` names the placement.
    """

    laser_deg: float
    camera_deg: tuple[float, float]
    uv: np.ndarray
    board_T: np.ndarray
    pose: str = ""


def board_plane(T: np.ndarray) -> tuple[np.ndarray, float]:
    """(n, d) of the plane z = 0 of a board with pose ``T`` (4x4 board -> world)."""
    n = np.asarray(T, np.float64)[:3, 2]
    return n, float(n @ T[:3, 3])


def stripe_points(camera: GalvoCamera, obs: StripeObservation) -> np.ndarray:
    """3D points (K, 3) where the stripe pixels' rays meet the board plane."""
    if len(obs.uv) == 0:
        return np.zeros((0, 3))
    c, dirs = camera.pixel_rays(obs.uv, *obs.camera_deg)
    n, d = board_plane(obs.board_T)
    s = (d - n @ c) / (dirs @ n)
    return c + s[:, None] * dirs


# ------------------------------------------------------------------------- dynamic laser
def _perp(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = unit(np.cross(u, a))
    return e1, np.cross(u, e1)


@dataclass
class LaserChart:
    """Local coordinates (``LASER_PARAMS``) of a ``DynamicLaser`` around a reference model."""

    ref: DynamicLaser
    _basis: dict = field(init=False, repr=False)

    def __post_init__(self) -> None:
        m = self.ref.mirror
        n_ref, u_ref = unit(self.ref.normal0), unit(m.axis_dir)
        g_ref = unit(np.asarray(m.normal0) - (np.asarray(m.normal0) @ u_ref) * u_ref)
        self._basis = {"n": (n_ref, *_perp(n_ref)), "u": (u_ref, *_perp(u_ref)), "g": g_ref,
                       "tau": float(np.arcsin(np.clip(unit(m.normal0) @ u_ref, -1, 1)))}

    def x0(self) -> np.ndarray:
        q = np.zeros(len(LASER_PARAMS))
        q[8] = self._basis["tau"]
        q[9] = self.ref.mirror.gain
        return q

    def model(self, q: np.ndarray) -> DynamicLaser:
        (n_ref, e1, e2), (u_ref, f1, f2) = self._basis["n"], self._basis["u"]
        m = self.ref.mirror
        n0 = unit(n_ref + q[0] * e1 + q[1] * e2)
        u = unit(u_ref + q[3] * f1 + q[4] * f2)
        a = np.asarray(m.axis_point, np.float64) + q[5] * f1 + q[6] * f2
        g = self._basis["g"]
        g = unit(g - (g @ u) * u)
        g = rotate_about(u, q[7], g)
        nm = np.cos(q[8]) * g + np.sin(q[8]) * u
        mirror = Mirror(a, u, nm, surface_offset_mm=m.surface_offset_mm, gain=float(q[9]), offset_deg=m.offset_deg)
        return DynamicLaser(n0, float(self.ref.d0 + q[2]), mirror)

    def prior_scale(self, prior_deg: float, prior_mm: float, prior_gain: float) -> np.ndarray:
        r = np.deg2rad(prior_deg)
        return np.array([r, r, prior_mm, r, r, prior_mm, prior_mm, r, r, prior_gain])


def sheet_residuals(model: DynamicLaser, laser_deg: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Signed distances (N,) mm of points (N, 3) to the model's sheet at their laser commands (N,)."""
    u, inv = np.unique(laser_deg, return_inverse=True)  # few commands, many points each
    return _grouped_residuals(model, u, inv, X)


def _grouped_residuals(model: DynamicLaser, commands: np.ndarray, inv: np.ndarray, X: np.ndarray) -> np.ndarray:
    n, d = model.sheets(commands)
    return np.einsum("ij,ij->i", X, n[inv]) - d[inv]


@dataclass
class LaserFit:
    model: DynamicLaser
    rms_mm: float
    median_mm: float
    max_mm: float
    n_points: int
    n_inliers: int
    iterations: int
    per_angle: list[dict]
    sigma: dict[str, float]

    def stats(self) -> dict:
        return {"rms_mm": round(self.rms_mm, 5), "median_abs_mm": round(self.median_mm, 5),
                "max_abs_mm": round(self.max_mm, 5), "points": self.n_points, "inliers": self.n_inliers,
                "angles": len(self.per_angle), "iterations": self.iterations}


def fit_dynamic_laser(laser_deg: np.ndarray, X: np.ndarray, init: DynamicLaser, point_sigma_mm: float = 0.1,
                      prior_deg: float = 1.0, prior_mm: float = 5.0, prior_gain: float = 0.02,
                      reject_mm: float | None = None, max_points: int = 20000) -> LaserFit:
    """Fit ``DynamicLaser`` to points (N, 3) observed at laser commands (N,) by point-to-plane distance."""
    laser_deg = np.asarray(laser_deg, np.float64).ravel()
    X = np.asarray(X, np.float64).reshape(-1, 3)
    if X.shape[0] != laser_deg.shape[0]:
        raise LaserCalibrationError(f"{X.shape[0]} points but {laser_deg.shape[0]} laser commands")
    angles = np.unique(laser_deg)
    if angles.size < 3 or X.shape[0] < 50:
        raise LaserCalibrationError(
            f"a dynamic laser fit needs stripes at >= 3 laser commands and >= 50 points, got {angles.size} and {X.shape[0]}")
    chart = LaserChart(init)
    q0 = chart.x0()
    scale = chart.prior_scale(prior_deg, prior_mm, prior_gain)
    keep = np.ones(X.shape[0], bool)

    def resid(q, Xk, uk, ik):
        r = _grouped_residuals(chart.model(q), uk, ik, Xk) / point_sigma_mm
        return np.concatenate([r, (q - q0) / scale])

    # Fit on an even subsample (the model has 10 parameters; stripes give far more points than needed).
    sub = np.zeros(X.shape[0], bool)
    sub[np.random.default_rng(0).permutation(X.shape[0])[:max_points]] = True
    res = None
    for _ in range(3):
        use = keep & sub
        uk, ik = np.unique(laser_deg[use], return_inverse=True)
        # Levenberg-Marquardt (MINPACK) on a linear loss: outliers are dropped between rounds instead.
        res = least_squares(resid, q0 if res is None else res.x, args=(X[use], uk, ik), method="lm",
                            x_scale="jac", max_nfev=2000)
        r = sheet_residuals(chart.model(res.x), laser_deg, X)
        lim = reject_mm if reject_mm is not None else max(5.0 * 1.4826 * np.median(np.abs(r)), 0.05)
        new = np.abs(r) <= lim
        if np.array_equal(new, keep):
            break
        keep = new
    model = chart.model(res.x)
    r = sheet_residuals(model, laser_deg, X)
    ri = r[keep]
    per_angle = []
    for a in angles:
        m = (laser_deg == a) & keep
        if m.any():
            per_angle.append({"laser_deg": float(a), "points": int(m.sum()),
                              "rms_mm": float(np.sqrt(np.mean(r[m] ** 2)))})
    try:
        J = res.jac[: keep.sum()]
        cov = np.linalg.pinv(J.T @ J) * float(np.mean(ri**2) / point_sigma_mm**2)
        sig = np.sqrt(np.maximum(np.diag(cov), 0.0))
    except (np.linalg.LinAlgError, ValueError):
        sig = np.full(len(LASER_PARAMS), np.nan)
    return LaserFit(model, float(np.sqrt(np.mean(ri**2))), float(np.median(np.abs(ri))), float(np.max(np.abs(ri))),
                    int(X.shape[0]), int(keep.sum()), int(res.nfev), per_angle,
                    {k: float(v) for k, v in zip(LASER_PARAMS, sig)})


@dataclass
class LaserCalibration:
    """Result of ``calibrate_laser``: per-command planes and the fitted dynamic model."""

    fit: LaserFit
    planes: list[dict]  # per laser command: normal, d, rms, points, model-vs-plane angle
    observations: int


def calibrate_laser(camera: GalvoCamera, observations: list[StripeObservation], init: DynamicLaser,
                    **fit_kwargs) -> LaserCalibration:
    """Stages 1-3 of the module docstring on stripe observations of boards of known pose."""
    if not observations:
        raise LaserCalibrationError("no stripe observations")
    pts, angs = [], []
    for obs in observations:
        X = stripe_points(camera, obs)
        pts.append(X)
        angs.append(np.full(X.shape[0], float(obs.laser_deg)))
    X = np.concatenate(pts)
    a = np.concatenate(angs)
    planes = []
    keep = np.ones(X.shape[0], bool)
    for ang in np.unique(a):
        m = np.flatnonzero(a == ang)
        try:
            pf = fit_plane(X[m])
            if pf.spread_mm[1] < 1.0:
                raise ShapeFitError("points on a line")
        except ShapeFitError:
            continue  # a single board at this command: no plane, the points still enter the model fit
        keep[m[~pf.inliers]] = False
        planes.append({"laser_deg": float(ang), "normal": [float(v) for v in pf.normal], "d_mm": pf.d,
                       "rms_mm": pf.rms_mm, "points": pf.n_points})
    fit = fit_dynamic_laser(a[keep], X[keep], init, **fit_kwargs)
    for p in planes:
        n, _ = fit.model.sheet(p["laser_deg"])
        p["model_angle_deg"] = float(np.degrees(np.arccos(min(1.0, abs(n @ np.asarray(p["normal"]))))))
    return LaserCalibration(fit, planes, len(observations))
