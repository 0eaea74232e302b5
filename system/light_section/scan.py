"""The scan procedure: step the camera's view over the volume, sweep the laser in each view.

``plan_scan`` works out, from the calibrated models alone, which camera-galvo
commands tile the measuring volume (views overlapping by ``overlap``) and,
per view, which laser-galvo commands put the sheet across that view's part
of the volume, stepped so that neighbouring stripes lie ``stripe_spacing_mm``
apart at the far end. ``run_scan`` drives the rig's ``scan_galvo``,
``laser_galvo``, ``laser`` and ``scan_camera``: per frame it moves the laser
mirror, waits until it has settled, exposes, extracts the stripe and
triangulates it with the commands in effect (``angle_source='commanded'``) or
the galvos' position feedback (``'measured'``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
from tqdm import tqdm

from foveate.system.errors import ConfigError
from foveate.system.safety import LaserInterlock
from foveate.system.light_section.stripe import StripeParams, extract_stripe
from foveate.system.light_section.triangulate import POINT_DTYPE, Triangulator, intersect_sheet

log = logging.getLogger(__name__)

DEFAULT_VOLUME_MM = ((-550.0, -650.0, 1600.0), (550.0, 650.0, 2250.0))


@dataclass(frozen=True)
class ScanSettings:
    """What to scan and how finely (mm, degrees)."""

    volume_mm: tuple[tuple[float, float, float], tuple[float, float, float]] = DEFAULT_VOLUME_MM
    overlap: float = 0.1  # fraction of a view shared with its neighbour
    stripe_spacing_mm: float = 2.0  # distance between neighbouring stripes at the far end of the volume
    laser_hold_y_deg: float = 0.0  # the laser galvo's unused second axis
    stripe: StripeParams = field(default_factory=StripeParams)
    min_angle_deg: float = 5.0  # grazing-angle rejection
    angle_source: Literal["commanded", "measured"] = "commanded"
    settle_timeout_s: float = 0.05
    max_views: int | None = None  # scan only the first N views (previews, tests)

    def __post_init__(self) -> None:
        lo, hi = self.volume_mm
        if not all(a < b for a, b in zip(lo, hi)):
            raise ConfigError(f"scan volume_mm: each lo must be below hi, got {self.volume_mm}")
        if not 0.0 <= self.overlap < 0.9:
            raise ConfigError(f"scan overlap must be in [0, 0.9), got {self.overlap}")
        if not self.stripe_spacing_mm > 0:
            raise ConfigError(f"scan stripe_spacing_mm must be > 0, got {self.stripe_spacing_mm}")


@dataclass(frozen=True)
class ViewPlan:
    index: int
    camera_deg: tuple[float, float]
    laser_deg: np.ndarray  # (F,) laser-galvo commands, in sweep order


@dataclass
class ScanResult:
    points: np.ndarray  # POINT_DTYPE
    plan: list[ViewPlan]
    stats: dict
    samples: list[tuple[int, np.ndarray, np.ndarray]]  # (view, image, stripe uv) for previews


# ----------------------------------------------------------------------------- planning
def _box_segments(centre: np.ndarray, dirs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Entry and exit points (2K, 3) of rays (K, 3) through the box ``lo..hi`` (rays that miss are dropped)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / dirs
        ta, tb = (lo - centre) * inv, (hi - centre) * inv
    t0 = np.nanmax(np.fmin(ta, tb), axis=1)
    t1 = np.nanmin(np.fmax(ta, tb), axis=1)
    hit = (t1 > np.maximum(t0, 0.0))
    t0 = np.maximum(t0, 0.0)
    pts = [centre + t0[hit, None] * dirs[hit], centre + t1[hit, None] * dirs[hit]]
    return np.concatenate(pts)


def laser_commands_through(tri: Triangulator, X: np.ndarray, limits_deg: tuple[float, float],
                           samples: int = 201) -> np.ndarray:
    """Laser command (deg) whose sheet passes through each point (N, 3); NaN where none within ``limits_deg``.

    A coarse grid of commands brackets the crossing, then secant steps on the bracket refine it.
    """
    X = np.asarray(X, np.float64).reshape(-1, 3)
    a = np.linspace(limits_deg[0], limits_deg[1], samples)
    n, d = tri.laser.sheets(a)
    f = X @ n.T - d[None, :]  # (N, samples) signed distance to each sheet
    cross = np.diff(np.sign(f), axis=1) != 0
    out = np.full(X.shape[0], np.nan)
    r = np.flatnonzero(cross.any(axis=1))
    if r.size == 0:
        return out
    k = np.argmax(cross[r], axis=1)
    lo, hi = a[k], a[k + 1]
    flo, fhi = f[r, k], f[r, k + 1]
    Xr = X[r]
    for _ in range(8):  # regula falsi (Illinois): converges in a few steps on this smooth, monotonic bracket
        with np.errstate(invalid="ignore", divide="ignore"):
            m = np.where(fhi != flo, lo - flo * (hi - lo) / (fhi - flo), 0.5 * (lo + hi))
        nm, dm = tri.laser.sheets(m)
        fm = np.einsum("ij,ij->i", Xr, nm) - dm
        left = np.sign(fm) == np.sign(flo)
        lo, flo, fhi = np.where(left, m, lo), np.where(left, fm, flo), np.where(left, fhi * 0.5, fhi)
        hi, fhi, flo = np.where(left, hi, m), np.where(left, fhi, fm), np.where(left, flo, flo * 0.5)
    out[r] = np.where(np.abs(flo) < np.abs(fhi), lo, hi)
    return out


def _line_of_sight_commands(tri: Triangulator, X: np.ndarray, start=(0.0, 0.0), iters: int = 30) -> np.ndarray:
    """Camera commands (2,) that put the point ``X`` (3,) at the principal point (Gauss-Newton)."""
    cam = tri.camera
    pp = cam.camera.K[:2, 2]
    c = np.array(start, np.float64)
    for _ in range(iters):
        r = cam.project(X[None], *c)[0] - pp
        if np.hypot(*r) < 1e-3:
            break
        h = 1e-3
        J = np.stack([(cam.project(X[None], c[0] + h, c[1])[0] - pp - r) / h,
                      (cam.project(X[None], c[0], c[1] + h)[0] - pp - r) / h], axis=1)
        c = c - np.linalg.lstsq(J, r, rcond=None)[0]
    return c


def plan_scan(tri: Triangulator, settings: ScanSettings, camera_limits_deg, laser_limits_deg) -> list[ViewPlan]:
    """Views and per-view laser sweeps covering ``settings.volume_mm`` (see the module docstring)."""
    lo, hi = (np.asarray(v, np.float64) for v in settings.volume_mm)
    cam = tri.camera.camera
    W, H = cam.width, cam.height
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    centre_cmd = _line_of_sight_commands(tri, (lo + hi) / 2)
    cmds = np.array([_line_of_sight_commands(tri, X, centre_cmd) for X in corners])
    # Footprint of one view in command space: pixels the image moves per command degree (J, 2 x 2).
    Xc = (lo + hi) / 2
    p0 = tri.camera.project(Xc[None], *centre_cmd)[0]
    J = np.stack([(tri.camera.project(Xc[None], centre_cmd[0] + 0.1, centre_cmd[1])[0] - p0) / 0.1,
                  (tri.camera.project(Xc[None], centre_cmd[0], centre_cmd[1] + 0.1)[0] - p0) / 0.1], axis=1)
    # Degrees of each command axis that move the image by its own extent along the motion.
    with np.errstate(divide="ignore"):
        foot = np.minimum(W / np.abs(J[0]), H / np.abs(J[1]))
    views_axes = []
    for ax in range(2):
        c0, c1 = cmds[:, ax].min(), cmds[:, ax].max()
        inner = (c1 - c0) - foot[ax]
        step = foot[ax] * (1.0 - settings.overlap)
        n = 1 if inner <= 0 else int(np.ceil(inner / step)) + 1
        half = max(inner, 0.0) / 2
        mid = (c0 + c1) / 2
        views_axes.append(np.linspace(mid - half, mid + half, n) if n > 1 else np.array([mid]))
    (cx0, cx1), (cy0, cy1) = camera_limits_deg
    plan: list[ViewPlan] = []
    us, vs = np.meshgrid(np.linspace(0, W - 1, 9), np.linspace(0, H - 1, 9))
    grid_uv = np.stack([us.ravel(), vs.ravel()], axis=1)
    for j, ty in enumerate(views_axes[1]):
        row = views_axes[0] if j % 2 == 0 else views_axes[0][::-1]
        for tx in row:
            tx_c, ty_c = float(np.clip(tx, cx0, cx1)), float(np.clip(ty, cy0, cy1))
            centre, dirs = tri.rays(grid_uv, tx_c, ty_c)
            P = _box_segments(centre, dirs, lo, hi)
            if P.shape[0] == 0:
                continue
            a = laser_commands_through(tri, P, laser_limits_deg)
            a = a[np.isfinite(a)]
            if a.size == 0:
                log.warning("view (%.3f, %.3f): the laser cannot reach its part of the volume", tx_c, ty_c)
                continue
            a0, a1 = a.min(), a.max()
            # Step: spacing at the farthest point of the view's segment.
            far = P[np.argmax(np.linalg.norm(P - np.asarray(tri.laser.mirror.axis_point), axis=1))]
            am = 0.5 * (a0 + a1)
            n1, d1 = tri.laser.sheet(am + 0.01)
            n0, d0 = tri.laser.sheet(am - 0.01)
            rate = abs((far @ n1 - d1) - (far @ n0 - d0)) / 0.02  # mm of sheet motion per command degree
            step = settings.stripe_spacing_mm / max(rate, 1e-9)
            laser = np.arange(a0, a1 + step, step)
            if len(plan) % 2 == 1:
                laser = laser[::-1]
            plan.append(ViewPlan(len(plan), (tx_c, ty_c), laser))
            if settings.max_views is not None and len(plan) >= settings.max_views:
                return plan
    return plan


def stripe_axis(tri: Triangulator, plan: list[ViewPlan], volume_mm=DEFAULT_VOLUME_MM) -> str:
    """``'rows'`` when the stripe runs top to bottom in the image (one centre per row), else ``'cols'``."""
    if not plan:
        return "rows"
    v = plan[len(plan) // 2]
    cam = tri.camera.camera
    c, d = tri.rays(cam.K[:2, 2][None], *v.camera_deg)
    z_mid = 0.5 * (volume_mm[0][2] + volume_mm[1][2])
    P = c + d[0] * (z_mid - c[2]) / d[0, 2]
    n, _ = tri.laser.sheet(float(np.median(v.laser_deg)))
    t = np.cross(n, d[0])
    t /= np.linalg.norm(t)
    uv = tri.camera.project(np.stack([P - 20 * t, P + 20 * t]), *v.camera_deg)
    du, dv = np.abs(uv[1] - uv[0])
    return "rows" if dv >= du else "cols"


# ----------------------------------------------------------------------------- running
def run_scan(rig, tri: Triangulator, plan: list[ViewPlan], settings: ScanSettings, progress: bool = True,
             keep_samples: int = 1, on_frame: Callable[[int, int], None] | None = None) -> ScanResult:
    """Drive the rig through ``plan``; returns every triangulated point with its source."""
    camera = rig.role("scan_camera")
    cam_galvo = rig.role("scan_galvo")
    laser_galvo = rig.role("laser_galvo")
    laser = rig.role("laser")
    total = int(sum(len(v.laser_deg) for v in plan))
    chunks: list[np.ndarray] = []
    samples: list[tuple[int, np.ndarray, np.ndarray]] = []
    n_frames = 0
    counts = {"profiles": 0, "valid": 0, "weak": 0, "saturated": 0, "double": 0, "no_fit": 0}
    t_proc = 0.0
    t0 = time.perf_counter()
    sim_t0 = rig.clock.now_ns()
    bar = tqdm(total=total, unit="frame", desc="scan", disable=not progress, leave=False)
    # The laser is on only while this procedure holds the interlock and its mirror aims inside the keep-in zone.
    interlock = LaserInterlock(rig, laser=laser, galvo=laser_galvo)
    outside = 0
    with interlock.hold("scan"), contextlib.closing(bar):
        for view in plan:
            cam_galvo.move_to(*view.camera_deg)
            cam_state = cam_galvo.wait_settled(settings.settle_timeout_s)
            cam_cmd = view.camera_deg if settings.angle_source == "commanded" else cam_state.measured_deg
            best = (-1, None, None)
            for a in view.laser_deg:
                if not interlock.inside(float(a), settings.laser_hold_y_deg):
                    outside += 1  # planned outside safety.laser_keep_in_deg: never lit
                    bar.update(1)
                    continue
                interlock.move(float(a), settings.laser_hold_y_deg)
                st = laser_galvo.wait_settled(settings.settle_timeout_s)
                if not laser.is_on:
                    interlock.on()
                frame = camera.read(timeout_s=1.0)
                tp = time.perf_counter()
                a_used = float(a) if settings.angle_source == "commanded" else float(st.measured_deg[0])
                stripe = extract_stripe(frame.image, settings.stripe)
                uv, idx = stripe.uv()
                rec = tri.records(uv, stripe.peak[idx], view.index, cam_cmd[0], cam_cmd[1], a_used)
                t_proc += time.perf_counter() - tp
                for k, v in stripe.counts().items():
                    counts[k] += v
                if rec.size:
                    chunks.append(rec)
                if keep_samples and uv.shape[0] > best[0]:
                    best = (uv.shape[0], frame.image, uv)
                n_frames += 1
                bar.update(1)
                if on_frame is not None:
                    on_frame(n_frames, total)
            if keep_samples and best[1] is not None:
                samples.append((view.index, best[1], best[2]))
    wall = time.perf_counter() - t0
    points = np.concatenate(chunks) if chunks else np.zeros(0, POINT_DTYPE)
    stats = {
        "views": len(plan),
        "frames": n_frames,
        "points": int(points.size),
        "wall_s": round(wall, 3),
        "sim_s": round((rig.clock.now_ns() - sim_t0) * 1e-9, 4),
        "processing_frames_per_s": round(n_frames / t_proc, 1) if t_proc > 0 else None,
        "stripe": counts,
        "method": settings.stripe.method,
        "angle_source": settings.angle_source,
        "outside_keep_in": outside,
    }
    return ScanResult(points, plan, stats, samples)


def points_xyz(points: np.ndarray) -> np.ndarray:
    """(N, 3) float64 positions of a ``POINT_DTYPE`` array."""
    return np.stack([points["x"], points["y"], points["z"]], axis=1).astype(np.float64)


__all__ = ["ScanSettings", "ViewPlan", "ScanResult", "plan_scan", "run_scan", "laser_commands_through",
           "points_xyz", "intersect_sheet", "stripe_axis"]
