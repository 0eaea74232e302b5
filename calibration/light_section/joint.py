"""Joint refinement of the camera-galvo and laser-galvo models (the paper's stage 3, "error correction").

Stage 1 (``foveate.calibration.galvo_fit``) fits the camera galvo to
checkerboard corners; stage 2 (``laser_calibration``) fits the laser to stripe
points cast onto the boards those poses say. Both stages leave errors the
other could see: a slightly wrong camera model bends the stripe points, which
the laser fit absorbs. Here one least-squares problem holds everything:

* the camera-galvo problem exactly as ``galvo_fit`` builds it (its
  parameterisation, gauges and reprojection residuals);
* the laser model in ``LaserChart`` coordinates, with its weak priors;
* for every stripe pixel seen on a board placement, the point triangulated by
  the *current* camera and laser models, and its distance to the board plane:
  the 3D error a scan would make.

Weights come from the data, not from guesses: the corner sigma is the RMS of
the stage-1 reprojection residuals (per coordinate); stripe points further
than ``reject_sigma`` robust sigmas from the median are dropped, and since the
errors of one stripe are correlated (pixel locking and speckle shift a whole
stripe), each point's sigma is ``sqrt(s_w^2 + n s_b^2)`` with ``s_w`` the
scatter within stripes, ``s_b`` the scatter of the stripes' medians and ``n``
the stripe's point count: a stripe weighs about as much as one observation of
its offset, however many pixels it has.

Board poses stay at their stage-1 values unless ``refine_poses``: the stripes
on a board cannot tell a board-pose error from a stripe's own offset, and with
free poses the step fits those offsets (stripe residuals fall to or below those of
the true models in simulation) and bends the models elsewhere.

The board placements of the stripes are those of the corner views (``pose``
names): in practice the stripe is imaged on the board, between corner captures,
without moving it.

**Limitation (measured, docs/light_section.md):** in simulation the staged
models (stages 1-2) are already consistent with each other (the laser is
fitted through the fitted camera, so it absorbs the camera's errors), and this
step does not reliably improve held-out points; use it to inspect the
calibration, and scan with the staged models.
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
                 prior_deg: float, prior_mm: float, max_points: int, refine_poses: bool) -> None:
        self.problem, self.x_cam0 = problem_from_fit(views, fit)
        names = self.problem.pose_names
        self.n_cam = self.x_cam0.size
        self.chart = LaserChart(laser)
        self.q0 = self.chart.x0()
        self.scale = self.chart.prior_scale(prior_deg, prior_mm, 0.02)
        pidx = {p: i for i, p in enumerate(names)}
        rng = np.random.default_rng(0)
        cam = fit.model.camera  # intrinsics stay fixed here, so the normalised rays do too
        rays, pose_of, cmd_of, laser_of, stripe_of = [], [], [], [], []
        for k, s in enumerate(stripes):
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
                stripe_of.append(np.full(uv.shape[0], k))
        if not rays:
            raise LaserCalibrationError("no stripe pixels on any board placement")
        self.rays = np.concatenate(rays)
        self.pose_of = np.concatenate(pose_of)
        self.stripe_of = np.concatenate(stripe_of)
        cmds = np.concatenate(cmd_of)
        self.views, self.view_of = np.unique(cmds, axis=0, return_inverse=True)
        self.view_of = self.view_of.ravel()
        self.lasers, self.laser_of = np.unique(np.concatenate(laser_of), return_inverse=True)
        self.n_cam_res = self.problem.residuals(self.x_cam0).size
        self.n_stripe = self.rays.shape[0]
        # free parameters: mirror charts (+ board poses) of the camera problem, then the laser chart
        ng = self.problem.n_global
        cam_free = np.arange(self.n_cam) if refine_poses else np.arange(ng)
        self.free = np.concatenate([cam_free, self.n_cam + np.arange(self.q0.size)])
        self.sigma_px = 1.0
        self.sigma_mm = np.ones(self.n_stripe)

    def keep_stripe_points(self, keep: np.ndarray) -> None:
        for name in ("rays", "pose_of", "stripe_of", "view_of", "laser_of"):
            setattr(self, name, getattr(self, name)[keep])
        self.n_stripe = int(np.count_nonzero(keep))
        self.sigma_mm = self.sigma_mm[keep]

    def x0(self) -> np.ndarray:
        return np.concatenate([self.x_cam0, self.q0])

    def full(self, z: np.ndarray) -> np.ndarray:
        """The whole parameter vector with the free entries ``z`` (the others at their start values)."""
        x = self.x0()
        x[self.free] = z
        return x

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

    def residuals(self, z: np.ndarray) -> np.ndarray:
        x = self.full(z)
        xc, q = x[: self.n_cam], x[self.n_cam:]
        return np.concatenate([self.problem.residuals(xc) / self.sigma_px, self.stripe_mm(x) / self.sigma_mm,
                               (q - self.q0) / self.scale])

    def jacobian(self, z: np.ndarray) -> np.ndarray:
        x = self.full(z)
        J = np.zeros((self.n_cam_res + self.n_stripe + self.q0.size, z.size))
        cam_cols = self.free[self.free < self.n_cam]
        Jc = self.problem.jacobian(x[: self.n_cam])
        Jc = Jc.toarray() if hasattr(Jc, "toarray") else np.asarray(Jc)
        J[: self.n_cam_res, : cam_cols.size] = Jc[:, cam_cols] / self.sigma_px
        f0 = self.stripe_mm(x)
        for j, i in enumerate(self.free):  # stripe rows: forward differences (a few dozen cheap evaluations)
            h = 1e-7 * max(1.0, abs(x[i]))
            xp = x.copy()
            xp[i] += h
            J[self.n_cam_res: self.n_cam_res + self.n_stripe, j] = (self.stripe_mm(xp) - f0) / (h * self.sigma_mm)
        J[self.n_cam_res + self.n_stripe:, cam_cols.size:] = np.diag(1.0 / self.scale)
        return J

    def summary(self, x: np.ndarray) -> dict:
        rc = self.problem.residuals(x[: self.n_cam]).reshape(-1, 2)
        rs = self.stripe_mm(x)
        return {"reprojection_rms_px": round(float(np.sqrt(np.mean(np.sum(rc**2, axis=1)))), 5),
                "stripe_rms_mm": round(float(np.sqrt(np.mean(rs**2))), 5),
                "stripe_median_abs_mm": round(float(np.median(np.abs(rs))), 5), "stripe_points": int(rs.size)}


def _mad(r: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def _stripe_sigmas(jp: _Joint, r: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Per-point stripe sigma ``sqrt(s_w^2 + n s_b^2)`` (module docstring), ``s_w`` and ``s_b`` (mm)."""
    ids, inv, counts = np.unique(jp.stripe_of, return_inverse=True, return_counts=True)
    med = np.array([np.median(r[inv == k]) for k in range(ids.size)])
    s_w = max(_mad(r - med[inv]), 1e-3)
    s_b = _mad(med) if ids.size > 2 else 0.0
    return np.sqrt(s_w**2 + counts[inv] * s_b**2), s_w, s_b


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
                 sigma_px: float | None = None, sigma_mm: float | None = None, prior_deg: float = 1.0,
                 prior_mm: float = 5.0, max_points: int = 200, max_nfev: int = 30, refine_poses: bool = False,
                 reject_sigma: float = 5.0) -> JointFit:
    """Refine camera galvo and laser (and with ``refine_poses`` the board poses) together.

    ``galvo_fit`` is the stage-1 result on ``views``; ``laser`` the stage-2 model
    (in the same world frame); ``stripes`` the stripe pixels on those boards,
    at most ``max_points`` per stripe. ``sigma_px`` (per coordinate) and
    ``sigma_mm`` (per stripe point, taken as independent) override the sigmas
    estimated from the staged residuals (module docstring).
    """
    jp = _Joint(views, galvo_fit, laser, stripes, prior_deg, prior_mm, max_points, refine_poses)
    x0 = jp.x0()
    r0 = jp.stripe_mm(x0)
    keep = np.abs(r0 - np.median(r0)) <= reject_sigma * max(_mad(r0), 1e-3)
    if np.count_nonzero(keep) < 10:
        raise LaserCalibrationError(f"only {np.count_nonzero(keep)} stripe points lie on their boards")
    jp.keep_stripe_points(keep)
    r0 = r0[keep]
    rc = jp.problem.residuals(jp.x_cam0)
    jp.sigma_px = float(sigma_px) if sigma_px is not None else max(float(np.sqrt(np.mean(rc**2))), 1e-3)
    if sigma_mm is not None:
        jp.sigma_mm, s_w, s_b = np.full(jp.n_stripe, float(sigma_mm)), float(sigma_mm), 0.0
    else:
        jp.sigma_mm, s_w, s_b = _stripe_sigmas(jp, r0)
    before = jp.summary(x0)
    before.update({"rejected_stripe_points": int(np.count_nonzero(~keep)), "sigma_px": round(jp.sigma_px, 5),
                   "stripe_sigma_within_mm": round(s_w, 5), "stripe_sigma_between_mm": round(s_b, 5)})
    # Robust (soft-L1) loss: a stripe pixel on a board edge must not pull the camera model.
    res = least_squares(jp.residuals, x0[jp.free], jac=jp.jacobian, method="trf", x_scale="jac", loss="soft_l1",
                        f_scale=3.0, max_nfev=max_nfev)
    x = jp.full(res.x)
    after = jp.summary(x)
    xc = x[: jp.n_cam]
    Rb, tb = jp.problem.poses_from(xc)
    poses = {}
    for i, p in enumerate(jp.problem.pose_names):
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = Rb[i], tb[i]
        poses[p] = T
    log.info("joint refinement: %s -> %s (%d evaluations)", before, after, res.nfev)
    return JointFit(jp.problem.model_from(xc), jp.chart.model(x[jp.n_cam:]), poses, before, after, int(res.nfev))
