"""Analytic surfaces for light-section scenes: exact ray casting and point-to-surface distance.

Shapes and units: rays are an origin (3,) or (N, 3) and unit directions (N, 3)
in mm; ``intersect`` returns the ray parameter ``t`` (N,) (``inf`` on a miss,
only ``t > T_MIN`` counts) and unit normals (N, 3) facing the ray.
``distance`` returns the unsigned distance (N,) of points (N, 3) to the surface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

T_MIN = 1e-6  # mm: hits closer than this to the ray origin are ignored (self-shadowing)


def _as_origin(o: np.ndarray, n: int) -> np.ndarray:
    o = np.asarray(o, dtype=np.float64)
    return np.broadcast_to(o, (n, 3)) if o.ndim == 1 else o


def _facing(normals: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Flip normals (N, 3) to face against the ray directions (N, 3)."""
    s = np.where(np.einsum("ij,ij->i", normals, d) > 0, -1.0, 1.0)
    return normals * s[:, None]


@dataclass(frozen=True)
class Surface(ABC):
    """One object of a scene. ``albedo`` in [0, 1]; ``kind`` names the feature type for reports."""

    name: str
    albedo: float = 0.7

    kind = "surface"

    @abstractmethod
    def intersect(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest hit ``t`` (N,) with ``inf`` for misses, and unit normals (N, 3) facing the ray."""

    @abstractmethod
    def distance(self, X: np.ndarray) -> np.ndarray:
        """Unsigned distance (N,) of points (N, 3) to the surface."""

    @abstractmethod
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box (lo (3,), hi (3,))."""

    def describe(self) -> dict:
        """Exact geometry as plain numbers (mm), for docs and reports."""
        return {"name": self.name, "kind": self.kind}


@dataclass(frozen=True)
class Rectangle(Surface):
    """A flat rectangle: centre, unit normal, in-plane unit axis ``u`` and half sizes (along u, along n x u)."""

    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    normal: tuple[float, float, float] = (0.0, 0.0, -1.0)
    u: tuple[float, float, float] = (1.0, 0.0, 0.0)
    half_size: tuple[float, float] = (100.0, 100.0)

    kind = "plane"

    def _frame(self):
        n = np.asarray(self.normal, float)
        n = n / np.linalg.norm(n)
        u = np.asarray(self.u, float)
        u = u - (u @ n) * n
        u = u / np.linalg.norm(u)
        return np.asarray(self.centre, float), n, u, np.cross(n, u)

    def plane(self) -> tuple[np.ndarray, float]:
        c, n, _, _ = self._frame()
        return n, float(n @ c)

    def intersect(self, o, d):
        d = np.asarray(d, np.float64)
        o = _as_origin(o, d.shape[0])
        c, n, u, v = self._frame()
        den = d @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((c - o) @ n) / den
        p = o + t[:, None] * d - c
        inside = (np.abs(p @ u) <= self.half_size[0]) & (np.abs(p @ v) <= self.half_size[1])
        t = np.where(inside & (t > T_MIN) & (np.abs(den) > 1e-12), t, np.inf)
        return t, _facing(np.broadcast_to(n, d.shape).copy(), d)

    def distance(self, X):
        c, n, u, v = self._frame()
        p = np.asarray(X, np.float64) - c
        a = np.clip(p @ u, -self.half_size[0], self.half_size[0])
        b = np.clip(p @ v, -self.half_size[1], self.half_size[1])
        foot = a[:, None] * u + b[:, None] * v
        return np.linalg.norm(p - foot, axis=1)

    def bounds(self):
        c, n, u, v = self._frame()
        corners = np.array([c + su * self.half_size[0] * u + sv * self.half_size[1] * v
                            for su in (-1, 1) for sv in (-1, 1)])
        return corners.min(0), corners.max(0)

    def describe(self):
        c, n, u, _ = self._frame()
        return {**super().describe(), "centre_mm": [round(float(x), 6) for x in c],
                "normal": [round(float(x), 9) for x in n], "u": [round(float(x), 9) for x in u],
                "size_mm": [2 * self.half_size[0], 2 * self.half_size[1]]}


@dataclass(frozen=True)
class Sphere(Surface):
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    radius: float = 50.0

    kind = "sphere"

    def intersect(self, o, d):
        d = np.asarray(d, np.float64)
        o = _as_origin(o, d.shape[0])
        c = np.asarray(self.centre, float)
        oc = o - c
        b = np.einsum("ij,ij->i", oc, d)
        disc = b * b - (np.einsum("ij,ij->i", oc, oc) - self.radius**2)
        sq = np.sqrt(np.maximum(disc, 0.0))
        t1, t2 = -b - sq, -b + sq
        t = np.where(t1 > T_MIN, t1, np.where(t2 > T_MIN, t2, np.inf))
        t = np.where(disc >= 0, t, np.inf)
        p = o + np.where(np.isfinite(t), t, 0.0)[:, None] * d
        nrm = (p - c) / self.radius
        return t, _facing(nrm, d)

    def distance(self, X):
        return np.abs(np.linalg.norm(np.asarray(X, np.float64) - np.asarray(self.centre), axis=1) - self.radius)

    def bounds(self):
        c = np.asarray(self.centre, float)
        return c - self.radius, c + self.radius

    def describe(self):
        return {**super().describe(), "centre_mm": list(self.centre), "radius_mm": self.radius}


@dataclass(frozen=True)
class Box(Surface):
    """Axis-aligned box ``lo``..``hi`` (a gauge block). ``top_axis``/``top_sign`` name its measured face."""

    lo: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hi: tuple[float, float, float] = (1.0, 1.0, 1.0)

    kind = "block"

    def intersect(self, o, d):
        d = np.asarray(d, np.float64)
        o = _as_origin(o, d.shape[0])
        lo, hi = np.asarray(self.lo, float), np.asarray(self.hi, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            ta = (lo - o) * inv
            tb = (hi - o) * inv
        tmin = np.fmin(ta, tb)
        tmax = np.fmax(ta, tb)
        t_near = np.nanmax(tmin, axis=1)
        t_far = np.nanmin(tmax, axis=1)
        hit = (t_near <= t_far) & (t_far > T_MIN)
        t = np.where(t_near > T_MIN, t_near, t_far)
        t = np.where(hit, t, np.inf)
        # Normal: the face whose slab boundary equals t.
        entering = t_near > T_MIN
        face_t = np.where(entering[:, None], tmin, tmax)
        axis = np.argmin(np.abs(face_t - np.where(np.isfinite(t), t, 0.0)[:, None]), axis=1)
        nrm = np.zeros_like(d)
        nrm[np.arange(d.shape[0]), axis] = 1.0
        return t, _facing(nrm, d)

    def distance(self, X):
        X = np.asarray(X, np.float64)
        lo, hi = np.asarray(self.lo, float), np.asarray(self.hi, float)
        outside = np.maximum(np.maximum(lo - X, X - hi), 0.0)
        d_out = np.linalg.norm(outside, axis=1)
        d_in = np.min(np.minimum(X - lo, hi - X), axis=1)
        return np.where(d_out > 0, d_out, np.maximum(d_in, 0.0))

    def bounds(self):
        return np.asarray(self.lo, float), np.asarray(self.hi, float)

    def describe(self):
        return {**super().describe(), "lo_mm": list(self.lo), "hi_mm": list(self.hi)}


@dataclass(frozen=True)
class BumpPatch(Surface):
    """Free-form surface ``z = z0 - h(x, y)`` over a rectangle, bulging toward the camera (-z).

    ``h = amplitude * exp(-(dx^2/2sx^2 + dy^2/2sy^2)) * (1 + ripple * sin(kx dx) * cos(ky dy))``
    with ``dx = x - cx``, ``dy = y - cy``. Smooth, with slopes below 1, so every
    camera or laser ray crosses it once: the root is found to 1e-9 mm.
    """

    cx: float = 0.0
    cy: float = 0.0
    z0: float = 2000.0
    half_size: tuple[float, float] = (150.0, 150.0)
    amplitude: float = 60.0
    sigma: tuple[float, float] = (70.0, 55.0)
    ripple: float = 0.15
    k: tuple[float, float] = (0.03, 0.025)

    kind = "freeform"

    def height(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """h (N,) and its partial derivatives dh/dx, dh/dy."""
        dx, dy = x - self.cx, y - self.cy
        sx, sy = self.sigma
        kx, ky = self.k
        g = self.amplitude * np.exp(-(dx * dx / (2 * sx * sx) + dy * dy / (2 * sy * sy)))
        r = 1.0 + self.ripple * np.sin(kx * dx) * np.cos(ky * dy)
        h = g * r
        hx = g * (-dx / (sx * sx)) * r + g * self.ripple * kx * np.cos(kx * dx) * np.cos(ky * dy)
        hy = g * (-dy / (sy * sy)) * r - g * self.ripple * ky * np.sin(kx * dx) * np.sin(ky * dy)
        return h, hx, hy

    def _h_max(self) -> float:
        return self.amplitude * (1.0 + abs(self.ripple))

    def intersect(self, o, d):
        d = np.asarray(d, np.float64)
        n = d.shape[0]
        o = _as_origin(o, n)
        t_out = np.full(n, np.inf)
        nrm = np.zeros((n, 3))
        nrm[:, 2] = -1.0
        dz = d[:, 2]
        ok = np.abs(dz) > 1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            ta = (self.z0 - self._h_max() - o[:, 2]) / dz
            tb = (self.z0 - o[:, 2]) / dz
        t0, t1 = np.fmin(ta, tb), np.fmax(ta, tb)
        # Only rays whose slab segment overlaps the patch's footprint.
        hx, hy = self.half_size
        xa, xb = o[:, 0] + t0 * d[:, 0], o[:, 0] + t1 * d[:, 0]
        ya, yb = o[:, 1] + t0 * d[:, 1], o[:, 1] + t1 * d[:, 1]
        near = (ok & (t1 > T_MIN) & (np.fmax(xa, xb) >= self.cx - hx) & (np.fmin(xa, xb) <= self.cx + hx)
                & (np.fmax(ya, yb) >= self.cy - hy) & (np.fmin(ya, yb) <= self.cy + hy))
        idx = np.nonzero(near)[0]
        if idx.size == 0:
            return t_out, _facing(nrm, d)
        oo, dd = o[idx], d[idx]
        lo, hi = np.maximum(t0[idx], T_MIN), t1[idx]

        def g(t):
            p = oo + t[:, None] * dd
            h, hxx, hyy = self.height(p[:, 0], p[:, 1])
            return p[:, 2] - (self.z0 - h), dd[:, 2] + hxx * dd[:, 0] + hyy * dd[:, 1]

        # g is monotonic along these rays (slopes < ray steepness): safeguarded Newton on the bracket.
        sgn = np.sign(dd[:, 2])
        glo, _ = g(lo)
        ghi, _ = g(hi)
        has_root = (glo * sgn <= 0) & (ghi * sgn >= 0)
        t = 0.5 * (lo + hi)
        for _ in range(60):
            gv, dg = g(t)
            inc = gv * sgn > 0  # past the surface
            hi = np.where(inc, t, hi)
            lo = np.where(inc, lo, t)
            with np.errstate(divide="ignore", invalid="ignore"):
                tn = t - gv / dg
            bad = ~np.isfinite(tn) | (tn <= lo) | (tn >= hi)
            tn = np.where(bad, 0.5 * (lo + hi), tn)
            done = np.abs(tn - t) < 1e-10
            t = tn
            if np.all(done | ~has_root):
                break
        p = oo + t[:, None] * dd
        inside = (np.abs(p[:, 0] - self.cx) <= hx) & (np.abs(p[:, 1] - self.cy) <= hy) & has_root
        _, hxx, hyy = self.height(p[:, 0], p[:, 1])
        nn = np.stack([hxx, hyy, np.ones_like(hxx)], axis=1)  # gradient of z + h(x, y) - z0
        nn /= np.linalg.norm(nn, axis=1, keepdims=True)
        t_out[idx] = np.where(inside, t, np.inf)
        nrm[idx] = nn
        return t_out, _facing(nrm, d)

    def distance(self, X):
        """Distance to the graph: Gauss-Newton on the foot point (x, y), started below the point."""
        X = np.asarray(X, np.float64)
        x, y = X[:, 0].copy(), X[:, 1].copy()
        for _ in range(4):
            h, hx, hy = self.height(x, y)
            r0, r1, r2 = X[:, 0] - x, X[:, 1] - y, X[:, 2] - (self.z0 - h)
            # J = [(1, 0, -hx), (0, 1, -hy)]; solve (J^T J) delta = J^T r.
            a, b, c = 1 + hx * hx, hx * hy, 1 + hy * hy
            g0, g1 = r0 - hx * r2, r1 - hy * r2
            det = a * c - b * b
            x = x + (c * g0 - b * g1) / det
            y = y + (a * g1 - b * g0) / det
        h, _, _ = self.height(x, y)
        foot = np.stack([x, y, self.z0 - h], axis=1)
        return np.linalg.norm(X - foot, axis=1)

    def bounds(self):
        hx, hy = self.half_size
        return (np.array([self.cx - hx, self.cy - hy, self.z0 - self._h_max()]),
                np.array([self.cx + hx, self.cy + hy, self.z0]))

    def describe(self):
        return {**super().describe(), "formula": "z = z0 - A exp(-(dx^2/(2 sx^2) + dy^2/(2 sy^2))) "
                "(1 + ripple sin(kx dx) cos(ky dy)), dx = x - cx, dy = y - cy",
                "cx_mm": self.cx, "cy_mm": self.cy, "z0_mm": self.z0, "half_size_mm": list(self.half_size),
                "A_mm": self.amplitude, "sigma_mm": list(self.sigma), "ripple": self.ripple, "k_per_mm": list(self.k)}


@dataclass(frozen=True)
class SceneGeometry:
    """A set of surfaces: nearest-hit ray casting and nearest-surface distance.

    ``volume_mm`` is the measuring volume (lo (3,), hi (3,)) the scene is built for.
    """

    name: str
    surfaces: tuple[Surface, ...]
    volume_mm: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (-550.0, -650.0, 1600.0), (550.0, 650.0, 2250.0))
    meta: dict = field(default_factory=dict)

    def _candidates(self, s: Surface, o: np.ndarray, d: np.ndarray) -> np.ndarray | None:
        """Indices of rays that pass within the surface's bounding sphere (None: all of them)."""
        lo, hi = s.bounds()
        c, R = (lo + hi) / 2, np.linalg.norm(hi - lo) / 2 + 1e-6
        v = c - o
        proj = d @ v if o.ndim == 1 else np.einsum("ij,ij->i", d, v)
        vv = v @ v if o.ndim == 1 else np.einsum("ij,ij->i", v, v)
        near = (vv - proj * proj <= R * R) & (proj > -R)
        if near.mean() > 0.5:
            return None
        return np.flatnonzero(near)

    def _intersect(self, s: Surface, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        idx = self._candidates(s, o, d)
        if idx is None:
            t, nn = s.intersect(o, d)
            return t, nn, None
        if idx.size == 0:
            return np.zeros(0), np.zeros((0, 3)), idx
        t, nn = s.intersect(o if o.ndim == 1 else o[idx], d[idx])
        return t, nn, idx

    def cast(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nearest hit of each ray: ``t`` (N,) (inf on a miss), normals (N, 3), object index (N,) int16 (-1 miss).

        ``o`` is one origin (3,) or one per ray (N, 3); ``d`` unit directions (N, 3).
        """
        d = np.asarray(d, np.float64).reshape(-1, 3)
        o = np.asarray(o, np.float64)
        n = d.shape[0]
        best = np.full(n, np.inf)
        nrm = np.zeros((n, 3))
        obj = np.full(n, -1, np.int16)
        for i, s in enumerate(self.surfaces):
            t, nn, idx = self._intersect(s, o, d)
            if idx is None:
                idx = np.arange(n)
            closer = t < best[idx]
            sel = idx[closer]
            best[sel] = t[closer]
            nrm[sel] = nn[closer]
            obj[sel] = i
        return best, nrm, obj

    def occluded(self, o: np.ndarray, d: np.ndarray, t_max: np.ndarray, eps_mm: float = 1e-3) -> np.ndarray:
        """True where something lies on the ray before ``t_max - eps_mm`` (shadow test), (N,) bool."""
        d = np.asarray(d, np.float64).reshape(-1, 3)
        o = np.asarray(o, np.float64)
        t_max = np.broadcast_to(np.asarray(t_max, np.float64), (d.shape[0],))
        blocked = np.zeros(d.shape[0], bool)
        for s in self.surfaces:
            t, _, idx = self._intersect(s, o, d)
            if idx is None:
                blocked |= t < (t_max - eps_mm)
            else:
                blocked[idx] |= t < (t_max[idx] - eps_mm)
        return blocked

    def distance(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Distance (N,) of points (N, 3) to the nearest surface and that surface's index (N,)."""
        X = np.asarray(X, np.float64).reshape(-1, 3)
        if X.shape[0] == 0:
            return np.zeros(0), np.zeros(0, np.int16)
        D = np.stack([s.distance(X) for s in self.surfaces], axis=1)
        idx = np.argmin(D, axis=1)
        return D[np.arange(X.shape[0]), idx], idx.astype(np.int16)

    def index(self, name: str) -> int:
        for i, s in enumerate(self.surfaces):
            if s.name == name:
                return i
        raise KeyError(name)

    def describe(self) -> dict:
        lo, hi = self.volume_mm
        return {"scene": self.name, "volume_mm": {"lo": list(lo), "hi": list(hi)},
                "surfaces": [s.describe() for s in self.surfaces], **self.meta}
