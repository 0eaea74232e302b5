"""Least-squares planes and spheres through 3D points (mm), with outlier rejection.

Used by the laser calibration (a sheet per laser command) and by the accuracy
report (flatness, sphere radii, step heights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from foveate.system.errors import FoveateError


class ShapeFitError(FoveateError):
    """Too few or degenerate points for a shape fit."""


@dataclass(frozen=True)
class PlaneFit:
    """Plane ``normal . x = d``; residual statistics over the inliers (mm)."""

    normal: np.ndarray
    d: float
    inliers: np.ndarray  # (N,) bool
    rms_mm: float
    peak_to_valley_mm: float
    n_points: int
    spread_mm: tuple[float, float]  # RMS extent of the inliers along the plane's two principal axes


def fit_plane(X: np.ndarray, k_sigma: float = 3.0, iters: int = 10, min_mm: float = 0.02,
              facing=(0.0, 0.0, -1.0)) -> PlaneFit:
    """Plane through points (N, 3) by SVD, dropping points beyond ``k_sigma`` RMS (never below ``min_mm``).

    The normal is signed to point along ``facing`` (default: toward a camera looking along +z).
    """
    X = np.asarray(X, np.float64).reshape(-1, 3)
    if X.shape[0] < 3:
        raise ShapeFitError(f"a plane needs at least 3 points, got {X.shape[0]}")
    keep = np.ones(X.shape[0], bool)
    for _ in range(iters):
        c = X[keep].mean(axis=0)
        _, sv, vt = np.linalg.svd(X[keep] - c, full_matrices=False)
        n = vt[2]
        r = (X - c) @ n
        rms = float(np.sqrt(np.mean(r[keep] ** 2)))
        new = np.abs(r) <= max(k_sigma * rms, min_mm)
        if np.array_equal(new, keep) or new.sum() < 3:
            break
        keep = new
    k = max(int(keep.sum()), 1)
    if sv[1] / np.sqrt(k) < 1e-9:
        raise ShapeFitError("the points lie on a line: no plane through them")
    if n @ np.asarray(facing, float) < 0:
        n = -n
    r = (X[keep] - c) @ n
    return PlaneFit(n, float(n @ c), keep, float(np.sqrt(np.mean(r**2))), float(r.max() - r.min()), k,
                    (float(sv[0] / np.sqrt(k)), float(sv[1] / np.sqrt(k))))


@dataclass(frozen=True)
class SphereFit:
    centre: np.ndarray
    radius: float
    rms_mm: float
    n_points: int
    inliers: np.ndarray


def fit_sphere(X: np.ndarray, k_sigma: float = 3.0, iters: int = 5, min_mm: float = 0.02) -> SphereFit:
    """Geometric least-squares sphere (centre, radius) through points (N, 3), algebraic start, outliers dropped."""
    X = np.asarray(X, np.float64).reshape(-1, 3)
    if X.shape[0] < 4:
        raise ShapeFitError(f"a sphere needs at least 4 points, got {X.shape[0]}")
    # Algebraic fit: |x|^2 = 2 c.x + (r^2 - |c|^2), linear in (c, k).
    A = np.concatenate([2 * X, np.ones((X.shape[0], 1))], axis=1)
    sol, *_ = np.linalg.lstsq(A, (X**2).sum(axis=1), rcond=None)
    c, r = sol[:3], float(np.sqrt(max(sol[3] + sol[:3] @ sol[:3], 1e-12)))
    keep = np.ones(X.shape[0], bool)
    for _ in range(iters):
        res = least_squares(lambda p: np.linalg.norm(X[keep] - p[:3], axis=1) - p[3], np.r_[c, r], method="lm")
        c, r = res.x[:3], float(res.x[3])
        e = np.linalg.norm(X - c, axis=1) - r
        rms = float(np.sqrt(np.mean(e[keep] ** 2)))
        new = np.abs(e) <= max(k_sigma * rms, min_mm)
        if np.array_equal(new, keep) or new.sum() < 4:
            break
        keep = new
    e = np.linalg.norm(X[keep] - c, axis=1) - r
    return SphereFit(c, r, float(np.sqrt(np.mean(e**2))), int(keep.sum()), keep)
