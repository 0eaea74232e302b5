"""Panorama scenes: a street-like world at infinity, seen by direction only.

The world is laid out in metres on a ground plane (rig frame: x right, y
down, z forward; the rig sits ``cam_height_m`` above the ground): ground
bands (road, sidewalk, grass, parking, paving) with markings, building
facades with windows, trees, poles, signs, benches, and moving targets
(humans, vehicles) on trajectories. Everything is then seen *as a panorama*:
only the ray direction matters, the ray origin is ignored (all cameras of the
rig share one viewpoint, as for a distant scene; calibration boards and the
light-section scenes are the parts of the twin with real 3D parallax).

Rendering works on angles: the static world is evaluated procedurally on
regular azimuth/elevation grids into textures (a fine one at
``fine_step_deg`` filled lazily in tiles, for the search camera; a coarse
anti-aliased one for wide views) and cameras sample them with ``cv2.remap``;
moving targets are drawn on top as billboards with anti-aliased sprites,
far ones first.
"""

from __future__ import annotations

import bisect
import math
import mmap
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from foveate.hardware.sim import sprites
from foveate.hardware.sim.noise import fbm, hash01, value_noise
from foveate.hardware.sim.scene import CLASSES, CONSTRUCTION_SKY, FLAT, HUMAN, NATURE, OBJECT

GROUND_MATERIALS = ("road", "sidewalk", "grass", "parking", "paving")


# ------------------------------------------------------------------ trajectories
@dataclass
class Trajectory:
    """Ground-plane path ``points_m`` [[x, z], ...] travelled at ``speed_mps``.

    ``mode``: ``wrap`` (start again at the first point after the last),
    ``loop`` (closed polygon), ``pingpong`` (back and forth). ``offset_m`` is
    the arc length travelled at t = 0.
    """

    points_m: list[list[float]]
    speed_mps: float
    mode: str = "wrap"
    offset_m: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in ("wrap", "loop", "pingpong"):
            raise ValueError(f"trajectory mode must be wrap, loop or pingpong, got {self.mode!r}")
        pts = np.asarray(self.points_m, dtype=np.float64).reshape(-1, 2)
        if len(pts) < 1:
            raise ValueError("a trajectory needs at least one point")
        if self.mode == "loop" and len(pts) > 1:
            pts = np.vstack([pts, pts[:1]])
        self._pts = [(float(x), float(z)) for x, z in pts]
        seg = np.linalg.norm(np.diff(pts, axis=0), axis=1) if len(pts) > 1 else np.zeros(0)
        self._cum = [float(c) for c in np.concatenate([[0.0], np.cumsum(seg)])]
        self._len = float(self._cum[-1])

    def at(self, t_s: float) -> tuple[float, float, float, float]:
        """(x, z, dx, dz): position in metres and unit heading at time ``t_s``."""
        if self._len == 0.0:
            return self._pts[0][0], self._pts[0][1], 1.0, 0.0
        s = self.offset_m + self.speed_mps * t_s
        direction = 1.0
        if self.mode == "pingpong":
            s = s % (2 * self._len)
            if s > self._len:
                s, direction = 2 * self._len - s, -1.0
        else:
            s = s % self._len
        i = min(max(bisect.bisect_right(self._cum, s) - 1, 0), len(self._pts) - 2)
        (x0, z0), (x1, z1) = self._pts[i], self._pts[i + 1]
        seg_len = self._cum[i + 1] - self._cum[i]
        f = (s - self._cum[i]) / seg_len if seg_len > 0 else 0.0
        sgn = direction * (1.0 if self.speed_mps >= 0 else -1.0)
        if seg_len > 0:
            dx, dz = (x1 - x0) / seg_len * sgn, (z1 - z0) / seg_len * sgn
        else:
            dx, dz = sgn, 0.0
        return x0 + f * (x1 - x0), z0 + f * (z1 - z0), dx, dz


@dataclass
class Target:
    """A moving human or vehicle.

    ``size_m``: human [width, height]; vehicle [length, width, height].
    ``palette``: intensities of sprite parts 1..4 (main, secondary, dark, bright).
    """

    id: int
    cls: int
    trajectory: Trajectory
    size_m: list[float]
    palette: list[float]

    @property
    def class_name(self) -> str:
        return CLASSES[self.cls]

    def to_dict(self) -> dict:
        t = self.trajectory
        return {"id": self.id, "cls": self.cls, "size_m": list(self.size_m), "palette": list(self.palette),
                "trajectory": {"points_m": t.points_m, "speed_mps": t.speed_mps, "mode": t.mode, "offset_m": t.offset_m}}

    @staticmethod
    def from_dict(d: dict) -> "Target":
        return Target(int(d["id"]), int(d["cls"]), Trajectory(**d["trajectory"]), list(d["size_m"]), list(d["palette"]))


@dataclass(frozen=True)
class TargetView:
    """A target as seen from the rig at one instant: an angular billboard (degrees)."""

    id: int
    cls: int
    az_lo: float
    az_hi: float
    el_lo: float
    el_hi: float
    dist_m: float
    sprite: sprites.Sprite
    flip: bool
    palette: tuple[float, float, float, float]

    @property
    def centre_deg(self) -> tuple[float, float]:
        return ((self.az_lo + self.az_hi) / 2, (self.el_lo + self.el_hi) / 2)

    @property
    def class_name(self) -> str:
        return CLASSES[self.cls]

    def outline_deg(self, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """Points (az, el) along the billboard's border, ``n`` per side, for projecting boxes.

        Order: bottom edge left to right, top edge left to right, left edge and right edge bottom to top.
        """
        fa, fe = _outline_pattern(n)
        return self.az_lo + fa * (self.az_hi - self.az_lo), self.el_lo + fe * (self.el_hi - self.el_lo)


_OUTLINES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _outline_pattern(n: int) -> tuple[np.ndarray, np.ndarray]:
    got = _OUTLINES.get(n)
    if got is None:
        s = np.linspace(0.0, 1.0, n)
        z, o = np.zeros(n), np.ones(n)
        got = _OUTLINES[n] = (np.concatenate([s, s, z, o]), np.concatenate([z, o, s, s]))
    return got


# ----------------------------------------------------------------- static world
@dataclass
class Layout:
    """The static world in metres (see module docstring); lists of plain dicts so it saves as JSON.

    ground: [{z0, z1, material}] bands across the whole width, near to far.
    markings: [{type: dashes|crosswalk|bays, ...}].
    facades: [{x0, x1, z, height, tone, win_dx, win_dy}].
    trees: [{x, z, trunk_h, crown_r, tone}]; poles: [{x, z, height, width, head}] (head: lamp|sign|light|none);
    boxes: [{x, z, w, y0, h, tone, cls}] upright rectangles facing the rig (benches, kiosks, fountains).
    """

    cam_height_m: float = 5.0
    ground: list[dict] = field(default_factory=list)
    markings: list[dict] = field(default_factory=list)
    facades: list[dict] = field(default_factory=list)
    trees: list[dict] = field(default_factory=list)
    poles: list[dict] = field(default_factory=list)
    boxes: list[dict] = field(default_factory=list)
    texture_seed: int = 0


def _dirs(az_deg: np.ndarray, el_deg: np.ndarray):
    A = np.radians(az_deg)[None, :]
    E = np.radians(el_deg)[:, None]
    return A, E


class _Canvas:
    """Intensity, labels and depth of a grid, painted with a depth test."""

    def __init__(self, az: np.ndarray, el: np.ndarray) -> None:
        self.az, self.el = az, el
        H, W = el.shape[0], az.shape[0]
        self.I = np.zeros((H, W), np.float32)
        self.L = np.full((H, W), CONSTRUCTION_SKY, np.uint8)
        self.D = np.full((H, W), np.inf, np.float32)
        self.az_min, self.az_max = float(az[0]), float(az[-1])
        self.el_min, self.el_max = float(el[-1]), float(el[0])

    def window(self, az_lo: float, az_hi: float, el_lo: float, el_hi: float) -> tuple[slice, slice] | None:
        if az_hi < self.az_min or az_lo > self.az_max or el_hi < self.el_min or el_lo > self.el_max:
            return None
        c0, c1 = np.searchsorted(self.az, [az_lo, az_hi])
        # el decreases down the rows
        r0 = int(np.searchsorted(-self.el, -el_hi))
        r1 = int(np.searchsorted(-self.el, -el_lo))
        if c1 <= c0 or r1 <= r0:
            return None
        return slice(r0, r1), slice(int(c0), int(c1))

    def paint(self, win, mask, depth, inten, label) -> None:
        rs, cs = win
        D = self.D[rs, cs]
        m = mask & (depth < D)
        if not m.any():
            return
        D[m] = np.broadcast_to(depth, m.shape)[m]
        self.I[rs, cs][m] = np.broadcast_to(inten, m.shape)[m]
        if np.isscalar(label) or np.ndim(label) == 0:
            self.L[rs, cs][m] = label
        else:
            self.L[rs, cs][m] = np.broadcast_to(label, m.shape)[m]


def render_static(layout: Layout, az: np.ndarray, el: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate the static world on a regular grid.

    Args:
        az: (W,) increasing azimuths (deg, right positive); el: (H,) decreasing elevations (deg, up positive).
    Returns:
        intensity (H, W) float32 in [0, 1], labels (H, W) uint8, depth (H, W) float32 in m (inf: sky).
    """
    cv = _Canvas(az, el)
    h = layout.cam_height_m
    seed = layout.texture_seed
    A, E = _dirs(az, el)
    # Sky: gradient plus soft clouds.
    clouds = fbm(A * 6.0 + 0 * E, E * 14.0, seed + 7, octaves=3)
    cv.I[:] = 0.74 + 0.18 * np.clip(np.degrees(E) / 40.0, -0.2, 1.0) + 0.10 * (clouds - 0.5)
    _paint_ground(cv, layout, h, seed)
    # Angular bounds of the facades, computed once per layout (not a dataclass field: never saved).
    cached = layout.__dict__.get("_facade_bounds")
    if cached is None or cached[0] != (h, len(layout.facades)):
        cached = layout.__dict__["_facade_bounds"] = ((h, len(layout.facades)), [_facade_window(f, h) for f in layout.facades])
    for f, bounds in zip(layout.facades, cached[1]):
        _paint_facade(cv, f, h, seed, bounds)
    for tr in layout.trees:
        _paint_tree(cv, tr, h, seed)
    for p in layout.poles:
        _paint_pole(cv, p, h)
    for b in layout.boxes:
        _paint_box(cv, b, h, seed)
    return np.clip(cv.I, 0.0, 1.0), cv.L, cv.D


def _ground_hit(cv: _Canvas, h: float, rows: slice):
    A, E = _dirs(cv.az, cv.el[rows])
    dy = -np.sin(E)  # (Hr, 1), > 0 below the horizon
    cot = np.cos(E) / np.maximum(dy, 1e-9)
    X = h * np.sin(A) * cot
    Z = h * np.cos(A) * cot
    depth = (h / np.maximum(dy, 1e-9)) * np.ones_like(X)
    return X, Z, depth.astype(np.float32)


def _paint_ground(cv: _Canvas, lay: Layout, h: float, seed: int) -> None:
    r0 = int(np.searchsorted(-cv.el, 0.0, side="right"))
    rows = slice(r0, cv.el.shape[0])
    if r0 >= cv.el.shape[0] or not lay.ground:
        return
    X, Z, depth = _ground_hit(cv, h, rows)
    grain = hash01(np.floor(X * 40), np.floor(Z * 40), seed + 3) - 0.5
    inten = np.full(X.shape, 0.5, np.float32)
    label = np.full(X.shape, FLAT, np.uint8)
    edges = np.array([g["z0"] for g in lay.ground] + [lay.ground[-1]["z1"]])
    band = np.clip(np.searchsorted(edges, Z, side="right") - 1, 0, len(lay.ground) - 1)
    beyond = (Z < edges[0]) | (Z >= edges[-1])
    zmin, zmax = float(Z.min()), float(Z.max())
    xmin, xmax = float(X.min()), float(X.max())
    for k, g in enumerate(lay.ground):
        if g["z1"] <= zmin or g["z0"] > zmax:
            continue
        m = band == k
        whole = bool(m.all())  # the usual case in a small tile: no masking needed
        if not whole and not m.any():
            continue
        mat = g["material"]
        x, z = (X, Z) if whole else (X[m], Z[m])
        gm = grain if whole else grain[m]
        if whole:
            m = slice(None)
        if mat in ("road", "parking"):
            v = 0.27 + 0.08 * value_noise(x * 1.5, z * 1.5, seed + 11) + 0.04 * gm
        elif mat == "sidewalk":
            joint = (np.mod(x, 0.6) < 0.03) | (np.mod(z, 0.6) < 0.03)
            v = np.where(joint, 0.38, 0.56 + 0.06 * hash01(np.floor(x / 0.6), np.floor(z / 0.6), seed + 5)) + 0.03 * gm
        elif mat == "paving":
            joint = (np.mod(x + 0.5 * (np.floor(z / 0.4) % 2) * 0.8, 0.8) < 0.03) | (np.mod(z, 0.4) < 0.025)
            v = np.where(joint, 0.42, 0.62 + 0.08 * hash01(np.floor(x / 0.8), np.floor(z / 0.4), seed + 6)) + 0.03 * gm
        else:  # grass
            v = 0.30 + 0.12 * fbm(x * 2.0, z * 2.0, seed + 13, octaves=3) + 0.05 * gm
            label[m] = NATURE
        inten[m] = v
    inten[beyond] = 0.5
    for mk in lay.markings:
        t = mk["type"]
        z_lo, z_hi = (mk["z"] - 1.0, mk["z"] + 1.0) if t == "dashes" else (mk["z0"] - 0.1, mk["z1"] + 0.1)
        if z_hi < zmin or z_lo > zmax or (t == "crosswalk" and (mk["x1"] < xmin or mk["x0"] > xmax)):
            continue
        if t == "dashes":  # dashed centre line at z along x
            m = (np.abs(Z - mk["z"]) < mk.get("width", 0.15) / 2) & (np.mod(X, mk.get("period", 6.0)) < mk.get("period", 6.0) / 2)
        elif t == "crosswalk":  # stripes along z between z0, z1 for x in [x0, x1]
            m = (X >= mk["x0"]) & (X < mk["x1"]) & (Z >= mk["z0"]) & (Z < mk["z1"]) & (np.mod(X - mk["x0"], 1.0) < 0.5)
        elif t == "bays":  # parking bay lines: x-period lines between z0, z1, plus the end line
            m = (Z >= mk["z0"]) & (Z < mk["z1"]) & ((np.mod(X, mk.get("period", 2.6)) < 0.12) | (np.abs(Z - mk["z1"]) < 0.08))
        else:
            continue
        inten[m] = 0.86 + 0.04 * grain[m]
    # Aerial perspective: far ground fades toward the haze.
    fade = np.clip((depth - 60.0) / 240.0, 0.0, 0.7)
    inten = inten * (1 - fade) + 0.62 * fade
    cv.paint((rows, slice(None)), np.ones(X.shape, bool), depth, inten, label)


def _facade_window(f: dict, h: float):
    z = f["z"]
    xs = np.array([f["x0"], f["x1"], min(max(0.0, f["x0"]), f["x1"])])
    az = np.degrees(np.arctan2(xs, z))
    rho = np.hypot(xs, z)
    el_top = np.degrees(np.arctan2(f["height"] - h, rho))
    el_bot = np.degrees(np.arctan2(-h, rho))
    return az.min(), az.max(), el_bot.min() - 0.1, el_top.max() + 0.1


def _paint_facade(cv: _Canvas, f: dict, h: float, seed: int, bounds=None) -> None:
    win = cv.window(*(bounds if bounds is not None else _facade_window(f, h)))
    if win is None:
        return
    A, E = _dirs(cv.az[win[1]], cv.el[win[0]])
    z = f["z"]
    X = z * np.tan(A) * np.ones_like(E)
    Y = h + z * np.tan(E) / np.cos(A)  # height above ground where the ray meets the facade plane
    m = (X >= f["x0"]) & (X < f["x1"]) & (Y >= 0) & (Y < f["height"])
    depth = (z / (np.cos(E) * np.cos(A))).astype(np.float32)
    wx, wy = f.get("win_dx", 3.0), f.get("win_dy", 3.2)
    fx = np.mod(X - f["x0"], wx) / wx
    fy = np.mod(Y, wy) / wy
    is_win = (fx > 0.22) & (fx < 0.78) & (fy > 0.3) & (fy < 0.8) & (Y > 3.0) & (Y < f["height"] - 1.0)
    glass = 0.12 + 0.35 * hash01(np.floor((X - f["x0"]) / wx), np.floor(Y / wy), seed + int(f["x0"] * 10))
    shop = (Y < 3.0) & (Y > 0.4) & (np.mod(X - f["x0"], 5.0) > 0.6)
    wall = f["tone"] + 0.05 * (value_noise(X * 4.0, Y * 4.0, seed + 17) - 0.5)
    inten = np.where(is_win, glass, np.where(shop, 0.2 + 0.1 * glass, wall))
    inten = np.where(Y > f["height"] - 0.35, f["tone"] * 0.7, inten)
    cv.paint(win, m, depth, inten.astype(np.float32), CONSTRUCTION_SKY)


def _strip(cv: _Canvas, x: float, z: float, half_w: float, y0: float, y1: float, h: float):
    """Window, mask and depth of an upright rectangle [x +- half_w] x [y0, y1] (m above ground) facing the rig."""
    rho = math.hypot(x, z)
    if rho < 0.5:
        return None
    a_c = math.degrees(math.atan2(x, z))
    da = math.degrees(math.atan2(half_w, rho))
    e_lo = math.degrees(math.atan2(y0 - h, rho))
    e_hi = math.degrees(math.atan2(y1 - h, rho))
    win = cv.window(a_c - da, a_c + da, e_lo, e_hi)
    if win is None:
        return None
    A, E = _dirs(cv.az[win[1]], cv.el[win[0]])
    off = rho * np.tan(A - math.radians(a_c))  # lateral offset on the plane through the element
    Y = h + rho * np.tan(E) / np.cos(A - math.radians(a_c))
    m = (np.abs(off) < half_w) & (Y >= y0) & (Y < y1)
    depth = (rho / (np.cos(E) * np.cos(A - math.radians(a_c)))).astype(np.float32)
    return win, m, depth, off, Y


def _paint_tree(cv: _Canvas, tr: dict, h: float, seed: int) -> None:
    x, z, r = tr["x"], tr["z"], tr["crown_r"]
    cy = tr["trunk_h"] + 0.8 * r
    s = _strip(cv, x, z, 0.18, 0.0, tr["trunk_h"] + r * 0.5, h)
    if s is not None:
        win, m, depth, off, Y = s
        cv.paint(win, m, depth, (0.2 + 0.05 * (off > 0)).astype(np.float32), NATURE)
    c = np.array([x, h - cy, z])
    dist = float(np.linalg.norm(c))
    a_c = math.degrees(math.atan2(x, z))
    e_c = math.degrees(math.atan2(cy - h, math.hypot(x, z)))
    ang = math.degrees(math.asin(min(r / dist, 0.99)))
    win = cv.window(a_c - ang * 1.2, a_c + ang * 1.2, e_c - ang * 1.1, e_c + ang * 1.1)
    if win is None:
        return
    A, E = _dirs(cv.az[win[1]], cv.el[win[0]])
    dx, dy, dz = np.cos(E) * np.sin(A), -np.sin(E) * np.ones_like(A), np.cos(E) * np.cos(A)
    dot = dx * c[0] + dy * c[1] + dz * c[2]
    perp2 = dist * dist - dot * dot
    # A lumpy crown: radius modulated by noise over the viewing angle.
    lump = 1.0 + 0.18 * (value_noise(np.degrees(A) * 40 / max(ang, 0.05), np.degrees(E) * 40 / max(ang, 0.05), seed + 31) - 0.5)
    rr = r * lump
    m = perp2 < rr * rr
    depth = (dot - np.sqrt(np.maximum(rr * rr - perp2, 0))).astype(np.float32)
    leaves = fbm(np.degrees(A) * dist * 0.25, np.degrees(E) * dist * 0.25, seed + 37, octaves=3)
    shade = 1.0 - 0.35 * np.sqrt(np.clip(perp2 / (rr * rr), 0, 1))
    inten = (tr.get("tone", 0.3) * shade + 0.22 * (leaves - 0.5)).astype(np.float32)
    cv.paint(win, m, depth, inten, NATURE)


def _paint_pole(cv: _Canvas, p: dict, h: float) -> None:
    x, z, H = p["x"], p["z"], p["height"]
    s = _strip(cv, x, z, p.get("width", 0.12) / 2, 0.0, H, h)
    if s is not None:
        win, m, depth, off, Y = s
        cv.paint(win, m, depth, (0.32 + 0.08 * (off > 0)).astype(np.float32), OBJECT)
    head = p.get("head", "none")
    if head == "sign":
        s = _strip(cv, x, z - 0.05, 0.35, H - 0.7, H, h)
        if s is not None:
            win, m, depth, off, Y = s
            ring = (np.abs(off) > 0.27) | (Y > H - 0.08) | (Y < H - 0.62)
            cv.paint(win, m, depth, np.where(ring, 0.15, 0.9).astype(np.float32), OBJECT)
    elif head == "light":
        s = _strip(cv, x, z - 0.05, 0.18, H - 0.95, H, h)
        if s is not None:
            win, m, depth, off, Y = s
            lamp = (np.abs(off) < 0.1) & (np.mod(Y - (H - 0.95), 0.3) > 0.07) & (np.mod(Y - (H - 0.95), 0.3) < 0.24)
            cv.paint(win, m, depth, np.where(lamp, 0.8, 0.08).astype(np.float32), OBJECT)
    elif head == "lamp":
        s = _strip(cv, x + 0.5, z - 0.05, 0.6, H - 0.25, H + 0.05, h)
        if s is not None:
            win, m, depth, off, Y = s
            cv.paint(win, m, depth, np.where(Y < H - 0.15, 0.95, 0.25).astype(np.float32), OBJECT)


def _paint_box(cv: _Canvas, b: dict, h: float, seed: int) -> None:
    s = _strip(cv, b["x"], b["z"], b["w"] / 2, b.get("y0", 0.0), b.get("y0", 0.0) + b["h"], h)
    if s is None:
        return
    win, m, depth, off, Y = s
    tex = 0.05 * (value_noise(off * 5.0, Y * 5.0, seed + 41) - 0.5)
    slats = np.where(np.mod(Y - b.get("y0", 0.0), 0.15) < 0.03, -0.08, 0.0) if b.get("slats") else 0.0
    cv.paint(win, m, depth, (b["tone"] + tex + slats).astype(np.float32), int(b.get("cls", OBJECT)))


# -------------------------------------------------------------------- textures
def _lazy_zeros(shape: tuple[int, int], dtype) -> np.ndarray:
    """A zeroed array whose memory is committed page by page as tiles are written.

    Big ``np.zeros`` arrays get transparent huge pages on Linux: writing one 256-row tile then
    zeroes megabytes per array (about 15 ms per tile here). Anonymous memory advised against
    huge pages commits 4 KB at a time instead.
    """
    dtype = np.dtype(dtype)
    n = int(np.prod(shape)) * dtype.itemsize
    advice = getattr(mmap, "MADV_NOHUGEPAGE", None)
    if advice is None or n < (1 << 22):
        return np.zeros(shape, dtype)
    buf = mmap.mmap(-1, n)
    try:
        buf.madvise(advice)
    except OSError:
        pass
    return np.frombuffer(buf, dtype).reshape(shape)



class AngleTexture:
    """The static world sampled on a regular az/el grid, filled lazily in square tiles.

    Texel (row i, col j) is at az = az0 + (j + 0.5) step, el = el1 - (i + 0.5) step.
    ``supersample`` > 1 averages that many samples per texel side (anti-aliasing).
    """

    def __init__(self, layout: Layout, extent_deg: tuple[float, float, float, float], step_deg: float,
                 tile: int = 256, supersample: int = 1, dtype=np.float32) -> None:
        self.layout = layout
        self.az0, self.az1, self.el0, self.el1 = extent_deg
        self.step = float(step_deg)
        self.tile = int(tile)
        self.ss = int(supersample)
        self.W = int(math.ceil((self.az1 - self.az0) / self.step))
        self.H = int(math.ceil((self.el1 - self.el0) / self.step))
        self.dtype = np.dtype(dtype)
        self.scale = 65535.0 if self.dtype == np.uint16 else 1.0
        self.I = _lazy_zeros((self.H, self.W), self.dtype)
        self.L = _lazy_zeros((self.H, self.W), np.uint8)
        self.D = _lazy_zeros((self.H, self.W), np.uint16)  # depth in decimetres, 65535 = sky / beyond
        self.filled = np.zeros((-(-self.H // self.tile), -(-self.W // self.tile)), bool)

    def texel(self, az: np.ndarray, el: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fractional texel coordinates (col, row) of angles, for ``cv2.remap``."""
        return (az - self.az0) / self.step - 0.5, (self.el1 - el) / self.step - 0.5

    def ensure(self, az_lo: float, az_hi: float, el_lo: float, el_hi: float) -> None:
        """Fill every tile overlapping the angle box (plus one texel)."""
        c0, r0 = self.texel(np.float64(az_lo), np.float64(el_hi))
        c1, r1 = self.texel(np.float64(az_hi), np.float64(el_lo))
        t = self.tile
        tr0, tr1 = max(int(r0 - 2) // t, 0), min(int(r1 + 2) // t, self.filled.shape[0] - 1)
        tc0, tc1 = max(int(c0 - 2) // t, 0), min(int(c1 + 2) // t, self.filled.shape[1] - 1)
        for i in range(tr0, tr1 + 1):
            for j in range(tc0, tc1 + 1):
                if not self.filled[i, j]:
                    self._fill(i, j)

    def ensure_all(self) -> None:
        self.ensure(self.az0, self.az1, self.el0, self.el1)

    def _fill(self, i: int, j: int) -> None:
        t, s, k = self.tile, self.step, self.ss
        rows = slice(i * t, min((i + 1) * t, self.H))
        cols = slice(j * t, min((j + 1) * t, self.W))
        nr, nc = rows.stop - rows.start, cols.stop - cols.start
        sub = (np.arange(k) + 0.5) / k
        az = self.az0 + (np.arange(cols.start, cols.stop)[:, None] + sub[None, :]).ravel() * s
        el = self.el1 - (np.arange(rows.start, rows.stop)[:, None] + sub[None, :]).ravel() * s
        inten, lab, depth = render_static(self.layout, az, el)
        if k > 1:
            inten = inten.reshape(nr, k, nc, k).mean(axis=(1, 3))
            lab = lab.reshape(nr, k, nc, k)[:, k // 2, :, k // 2]
            depth = depth.reshape(nr, k, nc, k).min(axis=(1, 3))
        self.D[rows, cols] = np.minimum(depth * 10.0, 65535.0).astype(np.uint16)
        self.I[rows, cols] = (inten * self.scale).astype(self.dtype) if self.scale != 1.0 else inten
        self.L[rows, cols] = lab
        self.filled[i, j] = True

    def sample(self, az: np.ndarray, el: np.ndarray, labels: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Bilinear intensity (float32 in [0, 1]) and nearest labels at angle maps (H, W)."""
        mx, my = self.texel(az, el)
        mx = mx.astype(np.float32)
        my = my.astype(np.float32)
        inten = cv2.remap(self.I, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if self.scale != 1.0:
            inten = inten.astype(np.float32) * np.float32(1.0 / self.scale)
        lab = cv2.remap(self.L, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE) if labels else None
        return inten, lab

    def depth_m(self, az: np.ndarray, el: np.ndarray) -> np.ndarray:
        """Static depth (m, float32; about 6.5 km for sky) at angle maps, nearest texel."""
        mx, my = self.texel(az, el)
        d = cv2.remap(self.D, mx.astype(np.float32), my.astype(np.float32), cv2.INTER_NEAREST,
                      borderMode=cv2.BORDER_REPLICATE)
        return d.astype(np.float32) * np.float32(0.1)


# -------------------------------------------------------------------- the scene
class PanoramaScene:
    """A panorama world: ``Layout`` (static) + ``Target`` list (moving), seen by direction.

    Subclasses (``scenes.py``) only generate layouts and targets from a seed.
    """

    name = "panorama"
    #: angles covered by the textures (az0, az1, el0, el1), deg; views beyond repeat the border texel
    extent_deg = (-38.0, 38.0, -30.0, 30.0)

    def __init__(self, layout: Layout, targets: list[Target], fine_step_deg: float = 0.01,
                 coarse_step_deg: float = 0.05, extent_deg: tuple | None = None) -> None:
        self.layout = layout
        self.targets = list(targets)
        if extent_deg is not None:
            self.extent_deg = tuple(float(v) for v in extent_deg)
        self.fine_step_deg = float(fine_step_deg)
        self.coarse_step_deg = float(coarse_step_deg)
        self._fine: AngleTexture | None = None
        self._coarse: AngleTexture | None = None

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {"layout": asdict(self.layout), "targets": [t.to_dict() for t in self.targets],
                "fine_step_deg": self.fine_step_deg, "coarse_step_deg": self.coarse_step_deg,
                "extent_deg": list(self.extent_deg)}

    @classmethod
    def from_dict(cls, d: dict) -> "PanoramaScene":
        return cls(Layout(**d["layout"]), [Target.from_dict(t) for t in d["targets"]],
                   fine_step_deg=d.get("fine_step_deg", 0.01), coarse_step_deg=d.get("coarse_step_deg", 0.05),
                   extent_deg=d.get("extent_deg"))

    # -------------------------------------------------------------- textures
    @property
    def fine(self) -> AngleTexture:
        if self._fine is None:
            self._fine = AngleTexture(self.layout, self.extent_deg, self.fine_step_deg, tile=256, dtype=np.uint16)
        return self._fine

    @property
    def coarse(self) -> AngleTexture:
        if self._coarse is None:
            self._coarse = AngleTexture(self.layout, self.extent_deg, self.coarse_step_deg, tile=128)
        return self._coarse

    def texture_for(self, pitch_deg: float) -> AngleTexture:
        """The texture level for pixels of ``pitch_deg``: fine for search views, coarse for wide ones."""
        return self.fine if pitch_deg < 2.5 * self.fine_step_deg else self.coarse

    def static_angles(self, az: np.ndarray, el: np.ndarray, pitch_deg: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Static world at angle maps (H, W); ``pitch_deg`` (pixel size) picks the texture level."""
        tex = self.texture_for(_pitch(az, el) if pitch_deg is None else pitch_deg)
        tex.ensure(float(az.min()), float(az.max()), float(el.min()), float(el.max()))
        return tex.sample(az, el)

    # --------------------------------------------------------------- targets
    def _arrays(self) -> dict:
        """Targets as padded arrays, so positions of all targets are computed at once."""
        cached = getattr(self, "_tarr", None)
        if cached is not None and cached["list"] is self.targets and cached["n"] == len(self.targets):
            return cached
        key = tuple(id(t) for t in self.targets)
        if cached is not None and cached["key"] == key:
            cached["list"] = self.targets
            return cached
        N = len(self.targets)
        K = max([len(t.trajectory._pts) for t in self.targets] + [2])
        pts = np.zeros((N, K, 2))
        cum = np.zeros((N, K))
        for n, t in enumerate(self.targets):
            tp = np.asarray(t.trajectory._pts, dtype=np.float64).reshape(-1, 2)
            c = np.asarray(t.trajectory._cum, dtype=np.float64)
            pts[n, : len(tp)] = tp
            pts[n, len(tp):] = tp[-1]
            cum[n, : len(c)] = c
            cum[n, len(c):] = c[-1]
        size = np.array([(list(t.size_m) + [0.0])[:3] for t in self.targets]).reshape(N, 3)
        self._tarr = {
            "key": key, "list": self.targets, "n": N, "pts": pts, "cum": cum, "len": cum[:, -1].copy(),
            "speed": np.array([t.trajectory.speed_mps for t in self.targets], dtype=np.float64),
            "offset": np.array([t.trajectory.offset_m for t in self.targets], dtype=np.float64),
            "pingpong": np.array([t.trajectory.mode == "pingpong" for t in self.targets], dtype=bool),
            "human": np.array([t.cls == HUMAN for t in self.targets], dtype=bool),
            "size": size,
        }
        return self._tarr

    def target_positions(self, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ground positions x, z (m) and unit headings dx, dz of all targets at ``t_s`` (arrays, target order)."""
        A = self._arrays()
        N = A["len"].shape[0]
        if N == 0:
            e = np.zeros(0)
            return e, e, e, e
        L = A["len"]
        Lsafe = np.where(L > 0, L, 1.0)
        s = A["offset"] + A["speed"] * t_s
        s_pp = np.mod(s, 2 * Lsafe)
        back = A["pingpong"] & (s_pp > Lsafe)
        s = np.where(A["pingpong"], np.where(back, 2 * Lsafe - s_pp, s_pp), np.mod(s, Lsafe))
        s = np.where(L > 0, s, 0.0)
        cum = A["cum"]
        K = cum.shape[1]
        i = np.clip((cum <= s[:, None]).sum(axis=1) - 1, 0, K - 2)
        r = np.arange(N)
        p0, p1 = A["pts"][r, i], A["pts"][r, i + 1]
        seg = cum[r, i + 1] - cum[r, i]
        segs = np.where(seg > 0, seg, 1.0)
        f = np.where(seg > 0, (s - cum[r, i]) / segs, 0.0)
        pos = p0 + f[:, None] * (p1 - p0)
        sgn = np.where(back, -1.0, 1.0) * np.where(A["speed"] >= 0, 1.0, -1.0)
        d = (p1 - p0) / segs[:, None] * sgn[:, None]
        d = np.where((seg > 0)[:, None], d, np.stack([sgn, np.zeros(N)], axis=1))
        return pos[:, 0], pos[:, 1], d[:, 0], d[:, 1]

    def _target_angles(self, t_s: float):
        """Billboard angles of all targets at ``t_s`` (arrays, target order): centre azimuth, half width,
        elevation span, distance, visibility mask, side view, heading across the line of sight."""
        A = self._arrays()
        h = self.layout.cam_height_m
        x, z, dx, dz = self.target_positions(t_s)
        rho = np.hypot(x, z)
        ok = (z > 0.5) & (rho >= 1.0)
        rs = np.where(ok, rho, 1.0)
        lx, lz = x / rs, z / rs
        cross = dx * lz - dz * lx  # heading across the line of sight (+: moving right)
        lateral = np.abs(cross)
        size = A["size"]
        human = A["human"]
        side = ~human & (lateral > 0.6)
        w = np.where(human, size[:, 0], np.where(side, size[:, 0] * lateral + size[:, 1] * (1 - lateral),
                                                  size[:, 1] + size[:, 0] * lateral * 0.5))
        hh = np.where(human, size[:, 1], size[:, 2])
        a_c = np.degrees(np.arctan2(x, z))
        da = np.degrees(np.arctan2(w / 2, rs))
        e_lo = np.degrees(np.arctan2(-h, rs))
        e_hi = np.degrees(np.arctan2(hh - h, rs))
        return a_c, da, e_lo, e_hi, rho, ok, side, cross

    def target_centres_deg(self, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centres (azimuth, elevation; deg) of all targets' billboards at ``t_s`` in target order, and which are
        in front of the camera: ``TargetView.centre_deg`` without building the views (cheap, for motion rates)."""
        if not self.targets:
            e = np.zeros(0)
            return e, e, e.astype(bool)
        a_c, _, e_lo, e_hi, _, ok, _, _ = self._target_angles(t_s)
        return a_c, (e_lo + e_hi) / 2, ok

    def target_views(self, t_s: float, bounds: tuple[float, float, float, float] | None = None) -> list[TargetView]:
        """Targets as angular billboards at ``t_s``, far to near (drawing order); ``bounds`` culls by angle."""
        if not self.targets:
            return []
        A = self._arrays()
        human = A["human"]
        a_c, da, e_lo, e_hi, rho, ok, side, cross = self._target_angles(t_s)
        if bounds is not None:
            ok &= (a_c + da >= bounds[0]) & (a_c - da <= bounds[1]) & (e_hi >= bounds[2]) & (e_lo <= bounds[3])
        out = []
        for n in np.flatnonzero(ok):
            tg = self.targets[n]
            if human[n]:
                # a quarter stride every 0.35 m walked
                spr = sprites.human(int(math.floor(abs(A["speed"][n]) * t_s / 0.35)) % 4)
            else:
                spr = sprites.vehicle_side() if side[n] else sprites.vehicle_front()
            out.append(TargetView(tg.id, tg.cls, float(a_c[n] - da[n]), float(a_c[n] + da[n]), float(e_lo[n]),
                                  float(e_hi[n]), float(rho[n]), spr, bool(cross[n] < 0), tuple(tg.palette)))
        out.sort(key=lambda v: -v.dist_m)
        return out

    def draw_targets(self, inten: np.ndarray, labels: np.ndarray | None, ids: np.ndarray | None, az: np.ndarray,
                     el: np.ndarray, t_s: float,
                     windows: Callable[[list[TargetView]], list[tuple[slice, slice] | None]] | None = None,
                     depth: np.ndarray | None = None, pitch_deg: float | None = None,
                     bounds: tuple[float, float, float, float] | None = None) -> list[TargetView]:
        """Draw targets into ``inten``/``labels`` (and ``ids``: target id + 1) in place; returns the views drawn.

        ``windows(views)`` gives, per view, the pixel rows/cols that may hold the target (from the
        camera model, all views at once); without it they are found by testing the angle maps. Static
        things nearer than a target hide it: ``depth`` (H, W) is the static depth in
        metres when the caller has it, otherwise it is sampled from the texture.
        ``bounds`` (az_lo, az_hi, el_lo, el_hi) of the view skips targets outside it cheaply.
        """
        drawn = []
        tex = None
        views = self.target_views(t_s, bounds)
        wins = windows(views) if windows is not None else [_window_from_maps(az, el, v) for v in views]
        for v, win in zip(views, wins):
            if win is None:
                continue
            rs, cs = win
            A = az[rs, cs]
            E = el[rs, cs]
            u = (A - v.az_lo) / (v.az_hi - v.az_lo)
            if v.flip:
                u = 1.0 - u
            w_t = (E - v.el_hi) / (v.el_lo - v.el_hi)
            spr = v.sprite
            # Pick a coarser sprite level when the target covers few pixels (anti-aliasing).
            span_px = max(A.shape[1], 1)
            level = 0
            while (spr.alpha.shape[1] >> (level + 1)) >= 2 * span_px and level < 3:
                level += 1
            alpha_tex, parts_tex = _sprite_level(spr, level)
            mx = (u * alpha_tex.shape[1] - 0.5).astype(np.float32)
            my = (w_t * alpha_tex.shape[0] - 0.5).astype(np.float32)
            alpha = cv2.remap(alpha_tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            if not (alpha > 0.0).any():
                continue
            if depth is not None:
                occ = depth[rs, cs] < v.dist_m
            else:
                if tex is None:
                    tex = self.texture_for(_pitch(az, el) if pitch_deg is None else pitch_deg)
                occ = tex.depth_m(A, E) < v.dist_m
            alpha[occ] = 0.0
            parts = cv2.remap(parts_tex, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            pal = np.array((0.0,) + v.palette, np.float32)
            col = pal[parts]
            sub = inten[rs, cs]
            sub += alpha * (col - sub)
            solid = alpha >= 0.5
            if labels is not None:
                labels[rs, cs][solid] = v.cls
            if ids is not None:
                ids[rs, cs][solid] = v.id + 1
            drawn.append(v)
        return drawn

    # ------------------------------------------------------------- protocol
    def render_rays(self, origin_mm: np.ndarray, dirs: np.ndarray, t_s: float, twin: Any = None):
        """Scene protocol: the panorama ignores ``origin_mm`` (a distant scene)."""
        az, el = dirs_to_az_el(dirs)
        pitch = _pitch(az, el)
        inten, lab = self.static_angles(az, el, pitch)
        self.draw_targets(inten, lab, None, az, el, t_s, pitch_deg=pitch)
        return np.clip(inten, 0.0, 1.0), lab


def dirs_to_az_el(dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rig-frame unit directions (..., 3) -> azimuth, elevation (deg); same convention as
    ``calibration.galvo_geometry.direction_to_az_el_deg`` (az right positive, el up positive)."""
    d = np.asarray(dirs)
    az = np.degrees(np.arctan2(d[..., 0], d[..., 2]))
    el = np.degrees(np.arctan2(-d[..., 1], np.hypot(d[..., 0], d[..., 2])))
    return az, el


def az_el_to_dirs(az_deg, el_deg) -> np.ndarray:
    """Inverse of ``dirs_to_az_el``: unit rig-frame directions (..., 3)."""
    a, e = np.radians(np.asarray(az_deg, dtype=np.float64)), np.radians(np.asarray(el_deg, dtype=np.float64))
    return np.stack([np.cos(e) * np.sin(a), -np.sin(e), np.cos(e) * np.cos(a)], axis=-1)


def _pitch(az: np.ndarray, el: np.ndarray) -> float:
    """Typical angular pixel size (deg) of angle maps."""
    H, W = az.shape
    if W < 2 and H < 2:
        return 1.0
    cy, cx = H // 2, W // 2
    if W >= 2:
        return float(math.hypot(az[cy, min(cx + 1, W - 1)] - az[cy, cx - 1 if cx else 0],
                                el[cy, min(cx + 1, W - 1)] - el[cy, cx - 1 if cx else 0]) / (2 if 0 < cx < W - 1 else 1))
    return float(abs(el[min(cy + 1, H - 1), 0] - el[cy, 0]))


def _window_from_maps(az: np.ndarray, el: np.ndarray, v: TargetView):
    m = (az >= v.az_lo) & (az < v.az_hi) & (el >= v.el_lo) & (el < v.el_hi)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


_SPRITE_LEVELS: dict = {}


def _sprite_level(spr: sprites.Sprite, level: int) -> tuple[np.ndarray, np.ndarray]:
    key = (id(spr), level)
    got = _SPRITE_LEVELS.get(key)
    if got is None:
        a, p = spr.alpha, spr.parts
        for _ in range(level):
            a = cv2.resize(a, (max(a.shape[1] // 2, 1), max(a.shape[0] // 2, 1)), interpolation=cv2.INTER_AREA)
            p = cv2.resize(p, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_NEAREST)
        got = _SPRITE_LEVELS[key] = (a, p)
    return got
