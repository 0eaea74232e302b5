"""Galvo-camera calibration: fit the two-mirror model to checkerboard views.

Data: views of a board at several *placements* (``pose`` groups), each seen
at several mirror commands without moving the board. A view at commands
``(tx, ty)`` of placement ``p`` sees corner ``X`` at

    pixel = project(K, dist, M1(tx) M2(ty) B_p X)

with ``B_p`` the board -> world pose. The world frame is the real camera
frame (gauge 1), so ``T_cw = I``.

Procedure (``fit_galvo``):

1. intrinsics: given (``camera.yaml``) or Zhang's method on all views;
2. one ``solvePnP`` per view: the virtual-camera pose ``V(t) B_p``;
3. mirror axes from pose changes: two views of one placement that differ in
   ``tx`` alone move by ``M1(tx_a) M1(tx_b)`` = a rotation by
   ``2 k1 (tx_a - tx_b)`` about axis 1; views differing in ``ty`` alone move
   by ``M1 (rotation about axis 2) M1``. A screw decomposition of each gives
   direction, gain and a point on the axis;
4. joint refinement of intrinsics, both mirrors and all board poses:
   ``scipy.optimize.least_squares`` (trust-region reflective, Huber loss on
   the corner residuals). The Jacobian is built from the problem's block
   structure (``CornerProblem.jacobian``: central differences for the global
   parameters, six evaluations for all board poses together) and handed over
   dense for the exact trust-region step: the iterative ``lsmr`` step that a
   sparse Jacobian (``jac_sparsity``) implies stalls on this ill-conditioned
   problem (docs/calibration.md has the measurements).

Mirror angles: a view's ``mirror_deg`` -- the galvo's position sensor at
mid-exposure when the capture recorded it, else the commanded angles. The
commanded angles still group the views (single-axis steps for the
initialisation, the command grid in reports).

Parameterisation (per mirror, 7 numbers): axis direction ``u`` = normalised
``u_ref + alpha e1 + beta e2`` (a chart on the sphere around the initial
direction); axis point = where the axis crosses the plane through ``c_ref``
perpendicular to ``u_ref`` (2 numbers: a point on an axis is only defined up
to a shift along it, gauge 2); mirror tilt ``tau`` (normal at zero angle is
``cos(tau) g(u) + sin(tau) u``); surface offset ``e`` in mm; gain ``k``.

Gauge 3: with free board poses, turning every board about axis 2 is the
same as adding an angle offset to mirror 2, and (for mirror 1) turning
mirror 2 and every board about axis 1 is the same as an offset of mirror 1 --
exactly when the mirror surfaces contain their axes, otherwise observable only
through the small surface offsets. We fix ``offset_deg = 0`` and start each
normal at a 45-degree fold; which way each mirror folds is picked by fitting
all four layouts briefly and keeping the best. Rays are then right up to one
rigid rotation of the scene: compare them in the frame of the zero-command view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import csr_matrix

from foveate.calibration.errors import CalibrationError
from foveate.calibration.galvo_geometry import GalvoCamera, Mirror, PinholeCamera, unit

log = logging.getLogger(__name__)

MIRROR_PARAMS = ("axis_alpha", "axis_beta", "point_p1_mm", "point_p2_mm", "tilt_rad", "surface_offset_mm", "gain")
INTRINSIC_NAMES = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3")


@dataclass
class View:
    """One view: its board corners (N, 2) px, the board points (N, 3) mm, placement and commands.

    ``measured_deg``: the galvo's position sensor at mid-exposure (mean over the
    view's frames), when recorded; the model then uses it as the mirror angles.
    """

    name: str
    pose: str
    theta_x_deg: float
    theta_y_deg: float
    uv: np.ndarray
    obj: np.ndarray
    measured_deg: tuple[float, float] | None = None

    @property
    def mirror_deg(self) -> tuple[float, float]:
        """The angles the model sees: measured when recorded, else commanded."""
        return self.measured_deg if self.measured_deg is not None else (self.theta_x_deg, self.theta_y_deg)


# ----------------------------------------------------------------------------- batch model
def _rodrigues_batch(u: np.ndarray, v: np.ndarray, ang: np.ndarray) -> np.ndarray:
    """Rotate the vector ``v`` (3,) about unit ``u`` (3,) by each angle in ``ang`` (V,) rad -> (V, 3)."""
    c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
    return v[None, :] * c + np.cross(u, v)[None, :] * s + (u * (u @ v))[None, :] * (1 - c)


def _mirror_batch(m: Mirror, cmd_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reflections of mirror ``m`` at commands (V,): linear parts (V, 3, 3) and translations (V, 3)."""
    ang = np.deg2rad(m.gain * cmd_deg + m.offset_deg)
    n = _rodrigues_batch(np.asarray(m.axis_dir, float), np.asarray(m.normal0, float), ang)
    d = n @ np.asarray(m.axis_point, float) + m.surface_offset_mm
    H = np.eye(3)[None] - 2.0 * n[:, :, None] * n[:, None, :]
    return H, 2.0 * d[:, None] * n


def virtual_extrinsics_batch(g: GalvoCamera, tx: np.ndarray, ty: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World -> virtual camera ``T_cw M1 M2`` for many commands: R (V, 3, 3), t (V, 3)."""
    H1, t1 = _mirror_batch(g.mirror1, np.asarray(tx, float))
    H2, t2 = _mirror_batch(g.mirror2, np.asarray(ty, float))
    R = H1 @ H2
    t = np.einsum("vij,vj->vi", H1, t2) + t1
    Rc, tc = g.T_cw[:3, :3], g.T_cw[:3, 3]
    return Rc[None] @ R, np.einsum("ij,vj->vi", Rc, t) + tc


def project_normalised(xc: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) -> pixels (..., 2) with OpenCV's 5-term distortion."""
    x = xc[..., 0] / xc[..., 2]
    y = xc[..., 1] / xc[..., 2]
    k1, k2, p1, p2, k3 = dist
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([K[0, 0] * xd + K[0, 1] * yd + K[0, 2], K[1, 1] * yd + K[1, 2]], axis=-1)


def _pose_matrix(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.asarray(rvec, float).reshape(3, 1))[0]
    T[:3, 3] = np.ravel(tvec)
    return T


def _rodrigues_many(rvecs: np.ndarray) -> np.ndarray:
    """(P, 3) rotation vectors -> (P, 3, 3) matrices."""
    th = np.linalg.norm(rvecs, axis=1)
    safe = np.where(th > 1e-12, th, 1.0)
    k = rvecs / safe[:, None]
    Kx = np.zeros((len(rvecs), 3, 3))
    Kx[:, 0, 1], Kx[:, 0, 2], Kx[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    Kx[:, 1, 0], Kx[:, 2, 0], Kx[:, 2, 1] = k[:, 2], -k[:, 1], k[:, 0]
    s, c = np.sin(th)[:, None, None], np.cos(th)[:, None, None]
    R = np.eye(3)[None] + s * Kx + (1 - c) * (Kx @ Kx)
    small = th < 1e-12
    R[small] = np.eye(3)
    return R


# ------------------------------------------------------------------------ parameterisation
def _perp_basis(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1.0, 0.0, 0.0]) if abs(u[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = unit(np.cross(u, a))
    return e1, np.cross(u, e1)


@dataclass
class MirrorChart:
    """Local coordinates of one mirror around a reference (see the module docstring)."""

    u_ref: np.ndarray
    c_ref: np.ndarray
    n_gauge: np.ndarray  # fixes the unobservable azimuth of the zero-angle normal
    e1: np.ndarray = field(init=False)
    e2: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.u_ref = unit(self.u_ref)
        self.e1, self.e2 = _perp_basis(self.u_ref)

    def mirror(self, q: np.ndarray) -> Mirror:
        alpha, beta, p1, p2, tau, e, k = q
        u = unit(self.u_ref + alpha * self.e1 + beta * self.e2)
        # Axis point: the axis line through c_ref + p1 e1 + p2 e2 (the plane point) with direction u.
        a = self.c_ref + p1 * self.e1 + p2 * self.e2
        g = unit(self.n_gauge - (self.n_gauge @ u) * u)
        n0 = np.cos(tau) * g + np.sin(tau) * u
        return Mirror(a, u, n0, surface_offset_mm=float(e), gain=float(k), offset_deg=0.0)

    def coords(self, m: Mirror) -> np.ndarray:
        """Inverse of ``mirror`` for a mirror with offset 0 whose normal respects the gauge."""
        u = unit(m.axis_dir)
        if u @ self.u_ref < 0:
            raise ValueError("axis direction opposite to the chart's reference")
        w = u / (u @ self.u_ref)
        alpha, beta = (w - self.u_ref) @ self.e1, (w - self.u_ref) @ self.e2
        # Where the axis crosses the plane through c_ref perpendicular to u_ref.
        a = np.asarray(m.axis_point, float)
        s = ((self.c_ref - a) @ self.u_ref) / (u @ self.u_ref)
        pa = a + s * u - self.c_ref
        tau = float(np.arcsin(np.clip(np.asarray(m.normal0) @ u, -1, 1)))
        return np.array([alpha, beta, pa @ self.e1, pa @ self.e2, tau, m.surface_offset_mm, m.gain])


def gauge_normal(u: np.ndarray, d_in: np.ndarray, sign: float) -> np.ndarray:
    """A 45-degree fold normal perpendicular to ``u``, folding ``d_in`` towards ``sign * (u x d_in)``.

    Fixes the start of the weakly observable azimuth of a mirror about its axis (see gauge 3).
    """
    f = np.cross(u, d_in)
    if np.linalg.norm(f) < 1e-6:  # axis along the incoming ray: any perpendicular will do
        f = _perp_basis(u)[0]
    f = sign * unit(f)
    n = f - unit(d_in)
    n = n - (n @ u) * u
    return unit(n)


# ------------------------------------------------------------------------------- results
@dataclass
class ViewResidual:
    name: str
    pose: str
    theta_x_deg: float
    theta_y_deg: float
    rms_px: float
    max_px: float
    residuals: np.ndarray  # (N, 2) observed - predicted


@dataclass
class GalvoFit:
    """Result of ``fit_galvo`` or ``check_galvo``."""

    model: GalvoCamera
    board_poses: dict[str, np.ndarray]  # pose name -> 4x4 board -> world
    views: list[ViewResidual]
    rms_px: float
    sigma: dict[str, float] = field(default_factory=dict)  # 1-sigma of each fitted parameter
    not_determined: list[str] = field(default_factory=list)
    weakly_determined: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fitted_intrinsics: bool = False
    iterations: int = 0

    @property
    def median_px(self) -> float:
        return float(np.median(np.concatenate([np.hypot(*v.residuals.T) for v in self.views])))

    @property
    def max_px(self) -> float:
        return float(max(v.max_px for v in self.views))

    def stats(self) -> dict:
        return {
            "rms_px": round(self.rms_px, 5),
            "median_px": round(self.median_px, 5),
            "max_px": round(self.max_px, 5),
            "views": len(self.views),
            "poses": len(self.board_poses),
            "corners": int(sum(len(v.residuals) for v in self.views)),
        }


# ------------------------------------------------------------------------- the problem
class CornerProblem:
    """Packs parameters and evaluates the corner residuals of all views at once.

    Parameter vector: the fitted intrinsics (``fit_intrinsics`` names), then 7
    chart coordinates per mirror (``MIRROR_PARAMS``, when ``fit_mirrors``), then
    6 numbers per board placement (rotation vector, translation mm) in
    ``pose_names`` order. Residuals: predicted - observed pixels, x and y of
    every corner of every view (``residuals``), Jacobian by ``jacobian``. Used
    by ``fit_galvo``/``check_galvo`` and extended by the light-section joint
    refinement (``problem_from_fit``).
    """

    def __init__(self, views: list[View], charts: tuple[MirrorChart, MirrorChart], camera: PinholeCamera,
                 fit_intrinsics: tuple[str, ...], fit_mirrors: bool = True) -> None:
        self.views = views
        self.charts = charts
        self.camera = camera
        self.fit_intrinsics = tuple(fit_intrinsics)
        self.fit_mirrors = fit_mirrors
        self.pose_names = list(dict.fromkeys(v.pose for v in views))
        pidx = {p: i for i, p in enumerate(self.pose_names)}
        self.view_pose = np.array([pidx[v.pose] for v in views])
        self.tx = np.array([v.mirror_deg[0] for v in views])
        self.ty = np.array([v.mirror_deg[1] for v in views])
        # Pad views to a common corner count so everything batches; mask the padding.
        n_max = max(len(v.uv) for v in views)
        self.obj = np.zeros((len(views), n_max, 3))
        self.uv = np.zeros((len(views), n_max, 2))
        self.mask = np.zeros((len(views), n_max), bool)
        for i, v in enumerate(views):
            n = len(v.uv)
            self.obj[i, :n], self.uv[i, :n], self.mask[i, :n] = v.obj, v.uv, True
        self.n_intr = len(self.fit_intrinsics)
        self.n_mirror = 2 * len(MIRROR_PARAMS) if fit_mirrors else 0
        self.n_global = self.n_intr + self.n_mirror

    # -- packing
    def intrinsics_vector(self, cam: PinholeCamera) -> np.ndarray:
        K, d = cam.K, (list(np.ravel(cam.dist)) + [0.0] * 5)[:5]
        full = dict(zip(INTRINSIC_NAMES, [K[0, 0], K[1, 1], K[0, 2], K[1, 2], *d]))
        return np.array([full[n] for n in self.fit_intrinsics])

    def camera_from(self, x: np.ndarray) -> PinholeCamera:
        if not self.n_intr:
            return self.camera
        K, d = self.camera.K.copy(), np.array((list(np.ravel(self.camera.dist)) + [0.0] * 5)[:5], float)
        for name, val in zip(self.fit_intrinsics, x[: self.n_intr]):
            i = INTRINSIC_NAMES.index(name)
            if i < 4:
                K[[(0, 0), (1, 1), (0, 2), (1, 2)][i]] = val
            else:
                d[i - 4] = val
        return PinholeCamera(K, self.camera.width, self.camera.height, d)

    def model_from(self, x: np.ndarray, fixed_model: GalvoCamera | None = None) -> GalvoCamera:
        cam = self.camera_from(x)
        if not self.fit_mirrors:
            return fixed_model.with_camera(cam)
        q = x[self.n_intr : self.n_global]
        k = len(MIRROR_PARAMS)
        return GalvoCamera(cam, self.charts[0].mirror(q[:k]), self.charts[1].mirror(q[k:]))

    def poses_from(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bp = x[self.n_global :].reshape(-1, 6)
        return _rodrigues_many(bp[:, :3]), bp[:, 3:]

    def pack(self, cam: PinholeCamera, mirrors: tuple[Mirror, Mirror] | None, poses: list[np.ndarray]) -> np.ndarray:
        parts = [self.intrinsics_vector(cam)]
        if self.fit_mirrors:
            parts += [self.charts[0].coords(mirrors[0]), self.charts[1].coords(mirrors[1])]
        for T in poses:
            parts.append(np.concatenate([cv2.Rodrigues(T[:3, :3])[0].ravel(), T[:3, 3]]))
        return np.concatenate(parts)

    # -- residuals
    def predict(self, x: np.ndarray, fixed_model: GalvoCamera | None = None) -> np.ndarray:
        g = self.model_from(x, fixed_model)
        Rv, tv = virtual_extrinsics_batch(g, self.tx, self.ty)
        Rb, tb = self.poses_from(x)
        Rb, tb = Rb[self.view_pose], tb[self.view_pose]
        R = Rv @ Rb
        t = np.einsum("vij,vj->vi", Rv, tb) + tv
        xc = np.einsum("vij,vnj->vni", R, self.obj) + t[:, None, :]
        xc[..., 2] = np.where(self.mask, xc[..., 2], 1.0)  # padding: any finite value
        return project_normalised(xc, g.camera.K, np.asarray((list(np.ravel(g.camera.dist)) + [0.0] * 5)[:5]))

    def residuals(self, x: np.ndarray, fixed_model: GalvoCamera | None = None) -> np.ndarray:
        r = self.predict(x, fixed_model) - self.uv
        return r[self.mask].ravel()

    def jacobian(self, x: np.ndarray, fixed_model: GalvoCamera | None = None) -> csr_matrix:
        """Sparse Jacobian (m x n) from the structure: every residual sees the global parameters and one board pose.

        Central differences for each global parameter (two evaluations each),
        forward differences for all board poses together (six evaluations).
        """
        f0 = self.residuals(x, fixed_model)
        m = f0.size
        Jg = np.empty((m, self.n_global))
        for i in range(self.n_global):
            # central differences: the near-gauge directions (axis points, surface offsets) have tiny
            # curvature, and forward-difference errors there stall the solver ~1e-2 px above the optimum
            h = 1e-6 * max(1.0, abs(x[i]))
            xp, xm = x.copy(), x.copy()
            xp[i] += h
            xm[i] -= h
            Jg[:, i] = (self.residuals(xp, fixed_model) - self.residuals(xm, fixed_model)) / (2 * h)
        rows_view = np.repeat(np.arange(len(self.views)), self.mask.sum(axis=1) * 2)
        pose_of_row = self.view_pose[rows_view]
        npose = len(self.pose_names)
        Jp = np.empty((m, 6))
        for k in range(6):
            idx = self.n_global + 6 * np.arange(npose) + k
            h = 1e-7 * np.maximum(1.0, np.abs(x[idx]))
            xp = x.copy()
            xp[idx] += h
            Jp[:, k] = (self.residuals(xp, fixed_model) - f0) / h[pose_of_row]
        ng = self.n_global
        data = np.concatenate([Jg, Jp], axis=1).ravel()
        cols = np.concatenate([np.broadcast_to(np.arange(ng), (m, ng)),
                               (ng + 6 * pose_of_row)[:, None] + np.arange(6)[None, :]], axis=1).ravel()
        indptr = np.arange(m + 1) * (ng + 6)
        return csr_matrix((data, cols, indptr), shape=(m, x.size))

    def param_names(self) -> list[str]:
        names = [f"camera.{n}" for n in self.fit_intrinsics]
        if self.fit_mirrors:
            names += [f"mirror{i}.{n}" for i in (1, 2) for n in MIRROR_PARAMS]
        for p in self.pose_names:
            names += [f"pose[{p}].{n}" for n in ("rx", "ry", "rz", "tx_mm", "ty_mm", "tz_mm")]
        return names


# ------------------------------------------------------------------------------ solver
def solve(problem: CornerProblem, x0: np.ndarray, f_scale_px: float = 1.0, max_nfev: int | None = None,
          fixed_model: GalvoCamera | None = None):
    """Minimise the Huber loss of ``problem``'s residuals from ``x0`` with ``scipy.optimize.least_squares``.

    Trust-region reflective with the exact (SVD) trust-region step on the
    structured Jacobian, parameters scaled by the Jacobian's columns. Returns
    scipy's ``OptimizeResult`` (``x``, ``cost``, ``jac`` dense, ``nfev``, ``success``, ``message``).
    """
    return least_squares(lambda x: problem.residuals(x, fixed_model), x0,
                         jac=lambda x: problem.jacobian(x, fixed_model).toarray(), method="trf", tr_solver="exact",
                         loss="huber", f_scale=f_scale_px, x_scale="jac", max_nfev=max_nfev)


# ------------------------------------------------------------------------ initialisation
def _screw(T: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation vector (3,), rotation (3, 3), translation (3,) of a rigid 4x4 motion."""
    R, t = T[:3, :3], T[:3, 3]
    return cv2.Rodrigues(R)[0].ravel(), R, t


def _fit_axis(motions: list[tuple[np.ndarray, float]], what: str) -> tuple[np.ndarray, float, np.ndarray]:
    """Direction u, gain k and a point from relative motions ``(T, delta_cmd_deg)`` = rotations by 2 k delta about one line."""
    w = np.array([_screw(T)[0] for T, _ in motions])
    dl = np.deg2rad(np.array([d for _, d in motions]))
    # Each rotation vector ~ u * 2 k delta: least squares for the common vector 2 k u.
    v = (w * dl[:, None]).sum(axis=0) / (dl @ dl)
    k = np.linalg.norm(v) / 2
    if not k > 1e-3:
        raise CalibrationError(
            f"the board does not move when {what} turns: check that captures.csv lists the commanded angles of that mirror"
        )
    u = v / np.linalg.norm(v)
    # Axis point: t = (I - R) p + s u for each motion; solve in least squares (p along u is free).
    A = np.concatenate([np.eye(3) - _screw(T)[1] for T, _ in motions])
    b = np.concatenate([_screw(T)[2] - (u @ _screw(T)[2]) * u for T, _ in motions])
    p = np.linalg.lstsq(A, b, rcond=None)[0]
    p = p - (p @ u) * u
    return u, float(k), p


def _single_axis_pairs(views: list[View], poses_T: list[np.ndarray], axis: int) -> list[tuple[int, int]]:
    """Index pairs of views of one placement whose commands differ in ``axis`` only (0: x, 1: y)."""
    pairs = []
    by_pose: dict[str, list[int]] = {}
    for i, v in enumerate(views):
        by_pose.setdefault(v.pose, []).append(i)
    for idx in by_pose.values():
        for a in idx:
            for b in idx:
                va, vb = views[a], views[b]
                same = va.theta_y_deg == vb.theta_y_deg if axis == 0 else va.theta_x_deg == vb.theta_x_deg
                diff = (va.theta_x_deg - vb.theta_x_deg) if axis == 0 else (va.theta_y_deg - vb.theta_y_deg)
                if same and diff > 0:
                    pairs.append((a, b))
    return pairs


def _relative_motion(va: View, vb: View, Ta: np.ndarray, Tb: np.ndarray, camera: PinholeCamera) -> np.ndarray:
    """Rigid motion taking the board as camera b saw it to the board as camera a saw it (4x4).

    The rotation comes from the corners' undistorted rays (Wahba's problem):
    for a narrow lens a PnP rotation is poor (tilt trades against
    translation) while the rays are measured almost directly. The translation
    comes from the board centroids, which PnP places well. The motions here
    are rotations about a mirror axis a few cm from the camera, so the rays
    turn almost exactly by the motion's rotation.
    """
    ra, rb = camera.normalised_rays(va.uv), camera.normalised_rays(vb.uv)
    U, _, Wt = np.linalg.svd(ra.T @ rb)
    D = np.diag([1.0, 1.0, np.linalg.det(U @ Wt)])
    R = U @ D @ Wt
    ca = Ta[:3, :3] @ va.obj.mean(axis=0) + Ta[:3, 3]
    cb = Tb[:3, :3] @ vb.obj.mean(axis=0) + Tb[:3, 3]
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, ca - R @ cb
    return T


def initial_model(views: list[View], view_T: list[np.ndarray], camera: PinholeCamera,
                  fold_signs: tuple[float, float] = (1.0, 1.0)) -> tuple[GalvoCamera, tuple[MirrorChart, MirrorChart]]:
    """Mirror axes, gains and points from the pose changes between views of one placement (step 3)."""
    pairs1 = _single_axis_pairs(views, view_T, 0)
    if not pairs1:
        raise CalibrationError(
            "no two views of one pose differ in theta_x_deg alone: mirror 1 cannot be initialised "
            "(capture each pose at a grid of commands)"
        )
    rel = {}
    for a, b in pairs1 + _single_axis_pairs(views, view_T, 1):
        rel[a, b] = _relative_motion(views[a], views[b], view_T[a], view_T[b], camera)
    m1_motions = [(rel[a, b], views[a].mirror_deg[0] - views[b].mirror_deg[0]) for a, b in pairs1]
    u1, k1, p1 = _fit_axis(m1_motions, "mirror 1 (theta_x_deg)")
    z = np.array([0.0, 0.0, 1.0])
    n1 = gauge_normal(u1, z, fold_signs[0])
    m1 = Mirror(p1, u1, n1, 0.0, k1, 0.0)
    pairs2 = _single_axis_pairs(views, view_T, 1)
    if not pairs2:
        raise CalibrationError(
            "no two views of one pose differ in theta_y_deg alone: mirror 2 cannot be initialised "
            "(capture each pose at a grid of commands)"
        )
    m2_motions = []
    for a, b in pairs2:
        M = m1.matrix(views[a].mirror_deg[0])
        m2_motions.append((M @ rel[a, b] @ M, views[a].mirror_deg[1] - views[b].mirror_deg[1]))
    u2, k2, p2 = _fit_axis(m2_motions, "mirror 2 (theta_y_deg)")
    d1 = m1.matrix(0.0)[:3, :3] @ z
    n2 = gauge_normal(u2, d1, fold_signs[1])
    m2 = Mirror(p2, u2, n2, 0.0, k2, 0.0)
    charts = (MirrorChart(u1, p1, n1), MirrorChart(u2, p2, n2))
    return GalvoCamera(camera, m1, m2), charts


def charts_for(model: GalvoCamera) -> tuple[MirrorChart, MirrorChart]:
    """Charts centred on an existing model (its normals define the gauge)."""
    return tuple(MirrorChart(np.asarray(m.axis_dir), np.asarray(m.axis_point), np.asarray(m.normal(0.0)))
                 for m in (model.mirror1, model.mirror2))


def problem_from_fit(views: list[View], fit: GalvoFit) -> tuple[CornerProblem, np.ndarray]:
    """The corner problem of a finished fit (intrinsics fixed) and its parameter vector, for refinements that extend it.

    Views of placements seen at one command only are left out, as ``fit_galvo``
    does; each mirror's angle offset is folded into its zero-angle normal (the
    same mirror, in the charts' gauge).
    """
    counts: dict[str, int] = {}
    for v in views:
        counts[v.pose] = counts.get(v.pose, 0) + 1
    views = [v for v in views if counts[v.pose] >= 2]
    m1, m2 = (replace(m, normal0=m.normal(0.0), offset_deg=0.0) for m in (fit.model.mirror1, fit.model.mirror2))
    model = replace(fit.model, mirror1=m1, mirror2=m2)
    problem = CornerProblem(views, charts_for(model), model.camera, ())
    missing = [p for p in problem.pose_names if p not in fit.board_poses]
    if missing:
        raise CalibrationError(f"views of placement(s) {', '.join(missing)} were not part of the fit")
    return problem, problem.pack(model.camera, (m1, m2), [fit.board_poses[p] for p in problem.pose_names])


# ----------------------------------------------------------------------------- checks
def check_coverage(views: list[View], min_views: int = 6) -> list[str]:
    """Raise ``CalibrationError`` naming what is missing; return notes on what was dropped."""
    notes = []
    if len(views) < min_views:
        raise CalibrationError(f"too few views with a detected board: {len(views)} (need at least {min_views})")
    tx = sorted({v.theta_x_deg for v in views})
    ty = sorted({v.theta_y_deg for v in views})
    for name, vals, mirror in (("theta_x_deg", tx, 1), ("theta_y_deg", ty, 2)):
        if len(vals) < 2:
            raise CalibrationError(
                f"degenerate angle grid: {name} takes only the value {vals[0]:g} in every view, so mirror {mirror} "
                "cannot be calibrated (command at least 3 values over its range)"
            )
    counts: dict[str, int] = {}
    for v in views:
        counts[v.pose] = counts.get(v.pose, 0) + 1
    single = [p for p, c in counts.items() if c < 2]
    if single:
        notes.append(f"poses seen at one command only carry no mirror information: {', '.join(single)}")
    if len(counts) - len(single) < 2:
        raise CalibrationError(
            f"too few poses seen at several commands: {len(counts) - len(single)} (need at least 2, better 6+ "
            "spread over the mirror range)"
        )
    return notes


def _spread_notes(views: list[View], limits_deg=None) -> list[str]:
    notes = []
    tx = np.array([v.theta_x_deg for v in views])
    ty = np.array([v.theta_y_deg for v in views])
    if limits_deg is not None:
        for name, vals, (lo, hi) in (("theta_x_deg", tx, limits_deg[0]), ("theta_y_deg", ty, limits_deg[1])):
            span = vals.max() - vals.min()
            if span < 0.6 * (hi - lo):
                notes.append(
                    f"{name} spans only {vals.min():g}..{vals.max():g} deg of the range {lo:g}..{hi:g}: "
                    "rays outside it are extrapolated"
                )
    return notes


# ------------------------------------------------------------------------------ fitting
def solve_view_poses(views: list[View], camera: PinholeCamera) -> list[np.ndarray]:
    """One ``solvePnP`` per view: 4x4 board -> (virtual) camera."""
    out = []
    for v in views:
        ok, rvec, tvec = cv2.solvePnP(v.obj, v.uv, camera.K, np.asarray(camera.dist, float), flags=cv2.SOLVEPNP_IPPE)
        if not ok:
            raise CalibrationError(f"{v.name}: solvePnP failed on the detected corners")
        rvec, tvec = cv2.solvePnPRefineLM(v.obj, v.uv, camera.K, np.asarray(camera.dist, float), rvec, tvec)
        out.append(_pose_matrix(rvec, tvec))
    return out


def initial_intrinsics(views: list[View], size: tuple[int, int]) -> PinholeCamera:
    """Zhang's method on every view (each view is a board pose seen by the virtual camera)."""
    flags = cv2.CALIB_FIX_K3
    rms, K, dist, _, _ = cv2.calibrateCamera(
        [v.obj.astype(np.float32) for v in views], [v.uv.astype(np.float32) for v in views], size, None, None, flags=flags
    )
    log.info("initial intrinsics from %d views: rms %.3f px, fx %.1f fy %.1f", len(views), rms, K[0, 0], K[1, 1])
    return PinholeCamera(K, size[0], size[1], np.ravel(dist)[:5].astype(float))


def _view_residuals(problem: CornerProblem, x: np.ndarray, fixed_model: GalvoCamera | None = None) -> list[ViewResidual]:
    pred = problem.predict(x, fixed_model)
    out = []
    for i, v in enumerate(problem.views):
        n = int(problem.mask[i].sum())
        r = problem.uv[i, :n] - pred[i, :n]
        e = np.hypot(r[:, 0], r[:, 1])
        out.append(ViewResidual(v.name, v.pose, v.theta_x_deg, v.theta_y_deg, float(np.sqrt(np.mean(e**2))),
                                float(e.max()), r))
    return out


def _rms(views: list[ViewResidual]) -> float:
    e2 = np.concatenate([np.sum(v.residuals**2, axis=1) for v in views])
    return float(np.sqrt(e2.mean()))


def _sigmas(problem: CornerProblem, res) -> dict[str, float]:
    """1-sigma of each global parameter from the Gauss-Newton covariance (board poses marginalised)."""
    J = problem.jacobian(res.x)
    r = problem.residuals(res.x)
    dof = max(1, len(r) - len(res.x))
    s2 = float(r @ r) / dof
    JtJ = (J.T @ J).toarray()
    try:
        cov = np.linalg.pinv(JtJ, rcond=1e-15) * s2
    except np.linalg.LinAlgError:
        return {}
    names = problem.param_names()
    return {names[i]: float(np.sqrt(max(cov[i, i], 0.0))) for i in range(problem.n_global)}


def _weak(sig: dict[str, float], model: GalvoCamera) -> list[str]:
    """Parameters the data pin down only loosely (thresholds chosen for mm-scale galvos)."""
    weak = []
    lim = {"axis_alpha": np.deg2rad(0.5), "axis_beta": np.deg2rad(0.5), "point_p1_mm": 1.0, "point_p2_mm": 1.0,
           "tilt_rad": np.deg2rad(0.5), "surface_offset_mm": 1.0, "gain": 5e-3}
    for name, s in sig.items():
        key = name.split(".")[-1]
        if key in lim and s > lim[key]:
            weak.append(f"{name} (1-sigma {s:.3g})")
    for name in ("camera.fx", "camera.fy"):
        if name in sig and sig[name] > 2e-3 * model.camera.K[0, 0]:
            weak.append(f"{name} (1-sigma {sig[name]:.3g} px)")
    return weak


NOT_DETERMINED = [
    "world frame: fixed to the real camera frame (T_cw = identity)",
    "mirror1.offset_deg, mirror2.offset_deg and the zero-angle normals' azimuth about their axes: "
    "with free board poses an angle offset equals a rotation of the whole scene (observable only through "
    "the surface offsets); fixed to 0 with 45-degree folds, so absolute directions are known only up to "
    "one rotation (compare rays in the zero-command view's frame; tie to the world with the wide-to-galvo map)",
    "mirror axis points along their axes: a point on an axis is defined only up to a shift along it; "
    "we store the point where each axis crosses a plane through its initial point",
]


def _initial_board_poses(views: list[View], view_T: list[np.ndarray], model: GalvoCamera) -> list[np.ndarray]:
    """Board -> world from the view nearest each pose's median command."""
    poses = []
    for p in dict.fromkeys(v.pose for v in views):
        idx = [i for i, v in enumerate(views) if v.pose == p]
        med = np.median([[views[i].theta_x_deg, views[i].theta_y_deg] for i in idx], axis=0)
        j = min(idx, key=lambda i: np.hypot(views[i].theta_x_deg - med[0], views[i].theta_y_deg - med[1]))
        V = model.virtual_extrinsics(*views[j].mirror_deg)
        poses.append(np.linalg.inv(V) @ view_T[j])
    return poses


def fit_galvo(views: list[View], camera: PinholeCamera | None, image_size: tuple[int, int],
              fit_intrinsics: bool | None = None, fit_distortion: tuple[str, ...] = ("k1", "k2", "p1", "p2"),
              f_scale_px: float = 1.0, limits_deg=None, max_nfev: int = 200) -> GalvoFit:
    """Calibrate a galvo camera from board views (see the module docstring)."""
    notes = check_coverage(views)
    counts: dict[str, int] = {}
    for v in views:
        counts[v.pose] = counts.get(v.pose, 0) + 1
    views = [v for v in views if counts[v.pose] >= 2]
    notes += _spread_notes(views, limits_deg)
    if fit_intrinsics is None:
        fit_intrinsics = camera is None
    if camera is None:
        camera = initial_intrinsics(views, image_size)
    view_T = solve_view_poses(views, camera)
    # Which way each mirror folds the view is observable only through the surface offsets (gauge 3):
    # fit all four 90-degree fold layouts to convergence and keep the lowest cost. (After a few
    # iterations the costs rank how fast each start converges, not where it ends: measured.)
    best = None
    total_nfev = 0
    for signs in ((1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)):
        model, charts = initial_model(views, view_T, camera, signs)
        problem = CornerProblem(views, charts, camera, ())
        x0 = problem.pack(camera, (model.mirror1, model.mirror2), _initial_board_poses(views, view_T, model))
        res = solve(problem, x0, f_scale_px, max_nfev=max_nfev)
        total_nfev += res.nfev
        log.info("fold signs %s: cost %.6g after %d evaluations", signs, res.cost, res.nfev)
        if best is None or res.cost < best[2].cost:
            best = (problem, charts, res)
    problem, charts, res = best
    if fit_intrinsics:  # stage 2: intrinsics too, from the best layout's mirrors and board poses
        model = problem.model_from(res.x)
        Rb, tb = problem.poses_from(res.x)
        poses = [np.block([[Rb[i], tb[i][:, None]], [np.zeros((1, 3)), np.ones((1, 1))]]) for i in range(len(Rb))]
        problem = CornerProblem(views, charts, camera, ("fx", "fy", "cx", "cy", *fit_distortion))
        x0 = problem.pack(camera, (model.mirror1, model.mirror2), poses)
        res = solve(problem, x0, f_scale_px, max_nfev=max_nfev)
        total_nfev += res.nfev
    model = problem.model_from(res.x)
    Rb, tb = problem.poses_from(res.x)
    poses = [np.block([[Rb[i], tb[i][:, None]], [np.zeros((1, 3)), np.ones((1, 1))]]) for i in range(len(Rb))]
    vres = _view_residuals(problem, res.x)
    sig = _sigmas(problem, res)
    fit = GalvoFit(model, dict(zip(problem.pose_names, poses)), vres, _rms(vres), sig, list(NOT_DETERMINED),
                   _weak(sig, model), notes, bool(fit_intrinsics), total_nfev)
    if not res.success:
        fit.notes.append(f"optimiser stopped early: {res.message}")
    return fit


def check_galvo(model: GalvoCamera, views: list[View], f_scale_px: float = 1.0) -> GalvoFit:
    """Reprojection error with the calibration held fixed: only one board pose per placement is solved."""
    if not views:
        raise CalibrationError("no views with a detected board to check against")
    names = list(dict.fromkeys(v.pose for v in views))
    poses = []
    for p in names:
        v = next(v for v in views if v.pose == p)
        T = solve_view_poses([v], model.camera)[0]
        poses.append(np.linalg.inv(model.virtual_extrinsics(*v.mirror_deg)) @ T)
    problem = CornerProblem(views, charts_for(model), model.camera, (), fit_mirrors=False)
    x0 = problem.pack(model.camera, None, poses)
    res = solve(problem, x0, f_scale_px, fixed_model=model)
    vres = _view_residuals(problem, res.x, model)
    Rb, tb = problem.poses_from(res.x)
    bp = {n: np.block([[Rb[i], tb[i][:, None]], [np.zeros((1, 3)), np.ones((1, 1))]]) for i, n in enumerate(names)}
    return GalvoFit(model, bp, vres, _rms(vres))


# ------------------------------------------------------------------------- ray comparison
def ray_angle_errors_deg(est: GalvoCamera, true: GalvoCamera, commands: np.ndarray, pixels: np.ndarray,
                         frame: str = "zero_view") -> np.ndarray:
    """Angles (C, P) in degrees between the rays two models give for each command (C, 2) and pixel (P, 2).

    ``frame="zero_view"`` compares directions in each model's own zero-command
    virtual camera frame (removes the unobservable scene rotation, gauge 3);
    ``frame="world"`` compares them in each model's world frame as is.
    """
    out = np.zeros((len(commands), len(pixels)))
    R0 = {id(m): m.virtual_extrinsics(0.0, 0.0)[:3, :3] for m in (est, true)}
    for c, (tx, ty) in enumerate(np.asarray(commands, float)):
        dirs = []
        for m in (est, true):
            _, d = m.pixel_rays(pixels, tx, ty)
            dirs.append(d @ R0[id(m)].T if frame == "zero_view" else d)
        cosang = np.clip(np.sum(dirs[0] * dirs[1], axis=1), -1.0, 1.0)
        out[c] = np.degrees(np.arccos(cosang))
    return out
