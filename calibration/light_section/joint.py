"""Joint refinement of the camera-galvo and laser-galvo models (the paper's stage 3, "error correction").

Stage 1 (``foveate.calibration.galvo_fit``) fits the camera galvo to
checkerboard corners; stage 2 (``laser_calibration``) fits the laser to stripe
points cast onto the boards those poses say. Both stages leave errors the
other could see: a slightly wrong camera model bends the stripe points, which
the laser fit absorbs. Here one least-squares problem holds everything:

* the camera-galvo problem exactly as ``galvo_fit`` builds it (its
  parameterisation, gauges and reprojection residuals, weight ``1/sigma_px``);
* the laser model in ``LaserChart`` coordinates, with its weak priors;
* for every stripe pixel seen on a board placement, the point triangulated by
  the *current* camera and laser models, and its distance to the *current*
  board plane (weight ``1/sigma_mm``): the 3D error a scan would make.

The board placements of the stripes are those of the corner views (``pose``
names): in practice the stripe is imaged on the board, between corner captures,
without moving it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from foveate.calibration.galvo_fit import GalvoFit, View, problem_from_fit
from foveate.calibration.galvo_geometry import GalvoCamera
from foveate.calibration.light_section.laser_calibration import LaserCalibrationError, LaserChart
from foveate.calibration.light_section.laser_model import DynamicLaser

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoardStripe:
    """Stripe pixels (K, 2) on board placement ``pose``, at camera commands and one laser command."""

    pose: str
    camera_deg: tuple[float, float]
    laser_deg: float
    uv: np.ndarray


@dataclass
class JointFit:
    camera: GalvoCamera
    laser: DynamicLaser
    board_poses: dict[str, np.ndarray]
    before: dict
    after: dict
    iterations: int

    def stats(self) -> dict:
        return {"before": self.before, "after": self.after, "iterations": self.iterations}


class _Joint:
    def __init__(self, views: list[View], fit: GalvoFit, laser: DynamicLaser, stripes: list[BoardStripe],
                 sigma_px: float, sigma_mm: float, prior_deg: float, prior_mm: float, max_points: int) -> None:
        self.problem, self.x_cam0 = problem_from_fit(views, fit)
        names = self.problem.pose_names
        self.n_cam = self.x_cam0.size
        self.chart = LaserChart(laser)
        self.q0 = self.chart.x0()
        self.scale = self.chart.prior_scale(prior_deg, prior_mm, 0.02)
        self.sigma_px, self.sigma_mm = sigma_px, sigma_mm
        pidx = {p: i for i, p in enumerate(names)}
        rng = np.random.default_rng(0)
        cam = fit.model.camera  # intrinsics stay fixed here, so the normalised rays do too
        rays, pose_of, cmd_of, laser_of = [], [], [], []
        for s in stripes:
            if s.pose not in pidx:
                raise LaserCalibrationError(f"stripe on board placement '{s.pose}', which has no corner views")
            uv = np.asarray(s.uv, np.float64).reshape(-1, 2)
            if uv.shape[0] > max_points:
                uv = uv[np.sort(rng.choice(uv.shape[0], max_points, replace=False))]
            if uv.shape[0]:
                rays.append(cam.normalised_rays(uv))
                pose_of.append(np.full(uv.shape[0], pidx[s.pose]))
                cmd_of.append(np.tile([float(s.camera_deg[0]), float(s.camera_deg[1])], (uv.shape[0], 1)))
                laser_of.append(np.full(uv.shape[0], float(s.laser_deg)))
        if not rays:
            raise LaserCalibrationError("no stripe pixels on any board placement")
        self.rays = np.concatenate(rays)
        self.pose_of = np.concatenate(pose_of)
        cmds = np.concatenate(cmd_of)
        self.views, self.view_of = np.unique(cmds, axis=0, return_inverse=True)
        self.view_of = self.view_of.ravel()
        self.lasers, self.laser_of = np.unique(np.concatenate(laser_of), return_inverse=True)
        self.n_cam_res = self.problem.residuals(self.x_cam0).size
        self.n_stripe = self.rays.shape[0]

    def x0(self) -> np.ndarray:
        return np.concatenate([self.x_cam0, self.q0])

    def stripe_mm(self, x: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of each triangulated stripe point to its board plane."""
        xc, q = x[: self.n_cam], x[self.n_cam:]
        model = self.problem.model_from(xc)
        Rb, tb = self.problem.poses_from(xc)
        n, dd = self.chart.model(q).sheets(self.lasers)
        n, dd = n[self.laser_of], dd[self.laser_of]
        c = np.empty((self.n_stripe, 3))
        d = np.empty((self.n_stripe, 3))
        for k, (tx, ty) in enumerate(self.views):
            m = self.view_of == k
            T = model.virtual_extrinsics(tx, ty)
            R = T[:3, :3]
            c[m] = -R.T @ T[:3, 3]
            d[m] = self.rays[m] @ R
        s = (dd - np.einsum("ij,ij->i", n, c)) / np.einsum("ij,ij->i", n, d)
        X = c + s[:, None] * d
        nb = Rb[self.pose_of][:, :, 2]
        return np.einsum("ij,ij->i", X, nb) - np.einsum("ij,ij->i", nb, tb[self.pose_of])

    def residuals(self, x: np.ndarray) -> np.ndarray:
        xc, q = x[: self.n_cam], x[self.n_cam:]
        return np.concatenate([self.problem.residuals(xc) / self.sigma_px, self.stripe_mm(x) / self.sigma_mm,
                               (q - self.q0) / self.scale])

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        n = x.size
        J = np.zeros((self.n_cam_res + self.n_stripe + self.q0.size, n))
        Jc = self.problem.jacobian(x[: self.n_cam])
        Jc = Jc.toarray() if hasattr(Jc, "toarray") else np.asarray(Jc)
        J[: self.n_cam_res, : self.n_cam] = Jc / self.sigma_px
        f0 = self.stripe_mm(x)
        for i in range(n):  # stripe rows: forward differences (a few hundred cheap evaluations)
            h = 1e-7 * max(1.0, abs(x[i]))
            xp = x.copy()
            xp[i] += h
            J[self.n_cam_res: self.n_cam_res + self.n_stripe, i] = (self.stripe_mm(xp) - f0) / (h * self.sigma_mm)
        J[self.n_cam_res + self.n_stripe:, self.n_cam:] = np.diag(1.0 / self.scale)
        return J

    def summary(self, x: np.ndarray) -> dict:
        rc = self.problem.residuals(x[: self.n_cam]).reshape(-1, 2)
        rs = self.stripe_mm(x)
        return {"reprojection_rms_px": round(float(np.sqrt(np.mean(np.sum(rc**2, axis=1)))), 5),
                "stripe_rms_mm": round(float(np.sqrt(np.mean(rs**2))), 5),
                "stripe_median_abs_mm": round(float(np.median(np.abs(rs))), 5), "stripe_points": int(rs.size)}


def laser_in_model_frame(laser: DynamicLaser, design_camera: GalvoCamera, fitted_camera: GalvoCamera) -> DynamicLaser:
    """A design laser (given in ``design_camera``'s world) moved into ``fitted_camera``'s world.

    The fitted camera's world is fixed by the calibration's gauges (it may be turned
    against the design's, even by 180 degrees); both cameras' zero-command virtual
    cameras are the same physical pose, which ties the two worlds together.
    """
    V_design = design_camera.virtual_extrinsics(0.0, 0.0)
    V_fit = fitted_camera.virtual_extrinsics(0.0, 0.0)
    return laser.transformed(np.linalg.inv(V_fit) @ V_design)


def joint_refine(views: list[View], galvo_fit: GalvoFit, laser: DynamicLaser, stripes: list[BoardStripe],
                 sigma_px: float = 0.3, sigma_mm: float = 0.1, prior_deg: float = 1.0, prior_mm: float = 5.0,
                 max_points: int = 20, max_nfev: int = 30) -> JointFit:
    """Refine camera galvo, board poses and laser together (see the module docstring).

    ``galvo_fit`` is the stage-1 result on ``views``; ``laser`` the stage-2 model
    (in the same world frame); ``stripes`` the stripe pixels on those boards.
    """
    jp = _Joint(views, galvo_fit, laser, stripes, sigma_px, sigma_mm, prior_deg, prior_mm, max_points)
    x0 = jp.x0()
    before = jp.summary(x0)
    # Robust (soft-L1) loss: a stripe pixel on a board edge must not pull the camera model.
    res = least_squares(jp.residuals, x0, jac=jp.jacobian, method="trf", x_scale="jac", loss="soft_l1",
                        f_scale=3.0, max_nfev=max_nfev)
    after = jp.summary(res.x)
    xc = res.x[: jp.n_cam]
    Rb, tb = jp.problem.poses_from(xc)
    poses = {}
    for i, p in enumerate(jp.problem.pose_names):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = Rb[i], tb[i]
        poses[p] = T
    log.info("joint refinement: %s -> %s (%d evaluations)", before, after, res.nfev)
    return JointFit(jp.problem.model_from(xc), jp.chart.model(res.x[jp.n_cam:]), poses, before, after, int(res.nfev))
