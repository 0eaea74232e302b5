"""A panoramic street world in angular coordinates, with semantic ground truth.

The world is a function of direction (azimuth, elevation in degrees) and
time: ``render(az_deg, el_deg, t_s)`` returns intensity in [0, 1] and the
class label of every sample. Class ids follow DDD17's six classes.
Deterministic from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLASSES = ("flat", "construction+sky", "object", "nature", "human", "vehicle")
FLAT, CONSTRUCTION_SKY, OBJECT, NATURE, HUMAN, VEHICLE = range(6)


@dataclass
class Target:
    """A moving target: a box of ``size_deg`` (w, h) whose bottom-centre follows a line in angle."""

    cls: int
    az0_deg: float
    el_bottom_deg: float
    size_deg: tuple[float, float]
    speed_deg_s: float
    intensity: float

    def box_deg(self, t_s: float, az_range: tuple[float, float]) -> tuple[float, float, float, float]:
        """(az_min, az_max, el_min, el_max) at time ``t_s``; motion wraps within ``az_range``."""
        lo, hi = az_range
        span = hi - lo
        az = lo + (self.az0_deg - lo + self.speed_deg_s * t_s) % span
        w, h = self.size_deg
        return (az - w / 2, az + w / 2, self.el_bottom_deg, self.el_bottom_deg + h)

    def centre_deg(self, t_s: float, az_range: tuple[float, float]) -> tuple[float, float]:
        a0, a1, e0, e1 = self.box_deg(t_s, az_range)
        return ((a0 + a1) / 2, (e0 + e1) / 2)


@dataclass
class World:
    """Static street panorama plus moving humans and vehicles."""

    seed: int = 0
    az_range_deg: tuple[float, float] = (-32.0, 32.0)
    el_range_deg: tuple[float, float] = (-24.0, 24.0)
    n_humans: int = 8
    n_vehicles: int = 5
    targets: list[Target] = field(default_factory=list)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self._bg_cache: dict = {}
        a0, a1 = self.az_range_deg
        # Skyline: buildings as (az_start, az_end, top_el, brightness).
        edges = np.sort(rng.uniform(a0, a1, size=12))
        edges = np.concatenate([[a0 - 1], edges, [a1 + 1]])
        self._bld_edges = edges
        self._bld_top = rng.uniform(4.0, 18.0, size=len(edges) - 1)
        self._bld_int = rng.uniform(0.35, 0.6, size=len(edges) - 1)
        self._trees = rng.uniform(a0, a1, size=6)  # tree trunk azimuths
        self._poles = rng.uniform(a0, a1, size=5)
        if not self.targets:
            for _ in range(self.n_humans):
                sidewalk = rng.choice([-4.0, -1.6])  # near and far sidewalk bottom elevation
                self.targets.append(
                    Target(HUMAN, rng.uniform(a0, a1), sidewalk + rng.uniform(-0.3, 0.3), (0.7, 2.0),
                           rng.choice([-1, 1]) * rng.uniform(0.5, 2.0), rng.uniform(0.05, 0.2))
                )
            for _ in range(self.n_vehicles):
                lane = rng.choice([-12.0, -8.0])
                self.targets.append(
                    Target(VEHICLE, rng.uniform(a0, a1), lane, (5.0, 2.2),
                           rng.choice([-1, 1]) * rng.uniform(2.0, 6.0), rng.uniform(0.75, 0.95))
                )

    def render(self, az_deg: np.ndarray, el_deg: np.ndarray, t_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Sample the world on a separable grid.

        Args:
            az_deg: (W,) azimuth of each column, increasing.
            el_deg: (H,) elevation of each row (row 0 is the top, so decreasing).
            t_s: world time in seconds.
        Returns:
            intensity (H, W) float32 in [0, 1] and labels (H, W) uint8.
        """
        az = np.asarray(az_deg, dtype=np.float64)
        el = np.asarray(el_deg, dtype=np.float64)
        A = az[None, :]
        inten, labels = self._background(az, el)
        return self._draw_targets(az, el, A, inten, labels, t_s)

    def _background(self, az: np.ndarray, el: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Static scene on the grid; cached per grid because fixed cameras ask for the same one."""
        key = (az[0], az[-1], az.shape[0], el[0], el[-1], el.shape[0])
        cached = self._bg_cache.get(key)
        if cached is None:
            cached = self._render_background(az, el)
            if len(self._bg_cache) >= 16:
                self._bg_cache.pop(next(iter(self._bg_cache)))
            self._bg_cache[key] = cached
        return cached[0].copy(), cached[1].copy()

    def _render_background(self, az: np.ndarray, el: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        A = az[None, :]
        E = el[:, None]
        bi = np.clip(np.searchsorted(self._bld_edges, az) - 1, 0, len(self._bld_top) - 1)
        top = self._bld_top[bi][None, :]
        H, W = el.shape[0], az.shape[0]
        labels = np.full((H, W), CONSTRUCTION_SKY, np.uint8)
        sky = 0.85 + 0.05 * np.tanh(E / 20.0)
        windows = ((np.floor(A * 1.5) + np.floor(E * 1.5)) % 2) * 0.08
        bld = self._bld_int[bi][None, :] + windows
        inten = np.where(E > top, sky, bld)
        # Trees: round crowns above the ground line.
        for tz in self._trees:
            crown = (A - tz) ** 2 + (E - 3.0) ** 2 < 2.5**2
            trunk = (np.abs(A - tz) < 0.25) & (E < 1.0) & (E >= 0.0)
            m = crown | trunk
            labels[m] = NATURE
            inten = np.where(crown, 0.25 + 0.05 * np.sin(A * 7 + E * 5), np.where(trunk, 0.2, inten))
        # Poles and signs.
        for pz in self._poles:
            m = (np.abs(A - pz) < 0.15) & (E < 6.0) & (E >= -1.0)
            labels[m] = OBJECT
            inten = np.where(m, 0.12, inten)
        # Ground: sidewalks and road with lane marks.
        ground = E < 0.0
        road = (E < -5.0) & (E > -14.0)
        lane = road & (np.abs(E + 10.0) < 0.15) & ((np.floor(A) % 3) == 0)
        g_int = np.where(road, 0.32, 0.55 + 0.03 * ((np.floor(A * 2) + np.floor(E * 2)) % 2))
        g_int = np.where(lane, 0.9, g_int)
        inten = np.where(ground, g_int, inten)
        labels[np.broadcast_to(ground, labels.shape)] = FLAT
        return np.broadcast_to(inten, labels.shape).astype(np.float64), labels

    def _draw_targets(self, az, el, A, inten, labels, t_s):
        # Targets, far (higher bottom) drawn first so nearer ones occlude them.
        desc_az = az[0] <= az[-1]
        for tg in sorted(self.targets, key=lambda g: -g.el_bottom_deg):
            a_lo, a_hi, e_lo, e_hi = tg.box_deg(t_s, self.az_range_deg)
            cols = _span(az, a_lo, a_hi, desc_az)
            rows = _span(el, e_lo, e_hi, el[0] <= el[-1])
            if cols.start >= cols.stop or rows.start >= rows.stop:
                continue
            labels[rows, cols] = tg.cls
            sub_a = A[:, cols] - (a_lo + a_hi) / 2
            shade = tg.intensity + 0.04 * np.cos(sub_a * 3.0)
            inten[rows, cols] = np.broadcast_to(shade, (rows.stop - rows.start, cols.stop - cols.start))
        return np.clip(inten, 0.0, 1.0).astype(np.float32), labels

    def visible_targets(self, t_s: float) -> list[tuple[int, int, tuple[float, float]]]:
        """(index, class, centre (az, el) deg) of each target at ``t_s``."""
        return [(i, tg.cls, tg.centre_deg(t_s, self.az_range_deg)) for i, tg in enumerate(self.targets)]


def _span(axis: np.ndarray, lo: float, hi: float, increasing: bool) -> slice:
    """Index slice of samples of a monotonic 1-D ``axis`` with ``lo <= v < hi``."""
    if increasing:
        i0, i1 = np.searchsorted(axis, [lo, hi], side="left")
        return slice(int(i0), int(i1))
    rev = axis[::-1]
    i0, i1 = np.searchsorted(rev, [lo, hi], side="left")
    n = axis.shape[0]
    return slice(int(n - i1), int(n - i0))
