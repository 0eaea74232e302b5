"""Probability search: which views to take next and in which order.

Each planning round (every ``replan_after`` views, or sooner when a new map
or a new track arrives):

1. **Revisits.** A confirmed track is due when the 1-sigma of its possible
   drift since the last update (prediction minus posterior covariance)
   exceeds ``revisit_sigma_frac`` of the half footprint or it was last looked
   at ``revisit_max_s`` ago; a tentative track is due at once (one look
   confirms or drops it). The sampling window is ``window_sigma`` times the
   prediction's sigma: a confident track gets one view on its predicted
   centre, an uncertain one a tiling of its window (at most
   ``max_window_views``, most probable first). This is the adaptive
   sampling range driven by the detector's variance through the tracker.
2. **Exploration.** The PPM's mass integrated over a footprint gives each
   candidate centre a value; views are drawn with probability ~
   value^sharpness among candidates worth at least ``min_value_frac`` of the
   best (or greedily), and each pick suppresses candidates whose footprint
   would overlap it by more than ``overlap``. A large, faintly likely
   background (ground, label noise) thus waits until the likely places are
   searched, then gets its turn as visited mass is suppressed. When even the
   best candidate is worth less than ``explore_min_value`` (everything likely
   searched or explained by tracks), the round revisits tracks instead,
   oldest look first.
3. **Order.** Nearest neighbour then 2-opt on the galvo's travel time
   (``GalvoMotionModel``: time-optimal move per axis under slew and
   acceleration limits plus settling; the slower axis sets the time).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import cv2
import numpy as np

from foveate.system.search.settings import GalvoModelSettings, PlannerSettings


@dataclass(frozen=True)
class View:
    """A planned view: mirror command (mechanical deg) and why it was chosen."""

    cmd: tuple[float, float]
    purpose: str  # explore | revisit | raster | random
    track_id: int = 0


@dataclass
class PlanContext:
    """What a planner may look at: the map, the tracks, the view size, the clock time."""

    t_ns: int
    current_cmd: tuple[float, float]
    ppm: object | None = None
    tracker: object | None = None
    footprint_half: tuple[float, float] = (0.8, 0.8)


class Planner(ABC):
    """Chooses the next view; the scheduler calls ``next_view`` once per search frame."""

    name = "planner"

    def __init__(self, limits_deg) -> None:
        self.limits_deg = limits_deg
        self.rounds = 0

    def clip(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.limits_deg
        return (float(min(max(x, x0), x1)), float(min(max(y, y0), y1)))

    @abstractmethod
    def next_view(self, ctx: PlanContext) -> View: ...

    def invalidate(self) -> None:
        """New information arrived (a map, a track): plan afresh at the next view."""


class GalvoMotionModel:
    """Travel time between commands: per axis rest-to-rest time-optimal move, plus settling."""

    def __init__(self, settings: GalvoModelSettings) -> None:
        self.v = settings.slew_deg_s
        self.a = settings.accel_deg_s2
        self.settle_s = settings.settle_s

    def axis_time_s(self, d: np.ndarray) -> np.ndarray:
        d = np.abs(np.asarray(d, dtype=np.float64))
        tri = d <= self.v**2 / self.a
        return np.where(tri, 2 * np.sqrt(d / self.a), d / self.v + self.v / self.a)

    def move_time_s(self, a, b) -> np.ndarray:
        """Broadcasting (..., 2) commands -> (...) seconds from ``a`` to ``b``."""
        d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
        t = np.maximum(self.axis_time_s(d[..., 0]), self.axis_time_s(d[..., 1]))
        return t + np.where(np.any(d != 0, axis=-1), self.settle_s, 0.0)


def order_views(start, points: np.ndarray, motion: GalvoMotionModel, two_opt: bool = True) -> np.ndarray:
    """Visiting order (indices into ``points`` (N, 2)) of an open path from ``start`` minimising travel time."""
    n = len(points)
    if n <= 1:
        return np.arange(n)
    allp = np.vstack([np.asarray(start, dtype=np.float64).reshape(1, 2), points])
    C = motion.move_time_s(allp[:, None, :], allp[None, :, :])
    path = [0]
    left = set(range(1, n + 1))
    while left:
        cur = path[-1]
        nxt = min(left, key=lambda j: C[cur, j])
        path.append(nxt)
        left.remove(nxt)
    if two_opt and n >= 3:
        p = np.array(path)
        improved = True
        while improved:
            improved = False
            for i in range(1, n):
                for k in range(i + 1, n + 1):
                    a, b = p[i - 1], p[i]
                    c = p[k]
                    d = p[k + 1] if k + 1 <= n else None
                    old = C[a, b] + (C[c, d] if d is not None else 0.0)
                    new = C[a, c] + (C[b, d] if d is not None else 0.0)
                    if new < old - 1e-12:
                        p[i:k + 1] = p[i:k + 1][::-1].copy()
                        improved = True
        path = list(p)
    return np.array(path[1:]) - 1


def path_time_s(start, points: np.ndarray, motion: GalvoMotionModel) -> float:
    allp = np.vstack([np.asarray(start, dtype=np.float64).reshape(1, 2), points])
    return float(motion.move_time_s(allp[:-1], allp[1:]).sum())


class ProbabilityPlanner(Planner):
    """The PPM-driven planner; see the module docstring."""

    name = "ppm"

    def __init__(self, limits_deg, settings: PlannerSettings, motion: GalvoMotionModel, seed: int = 0) -> None:
        super().__init__(limits_deg)
        self.settings = settings
        self.motion = motion
        self.rng = np.random.default_rng(seed)
        self.queue: list[View] = []
        self._since_plan = 0
        self._dirty = True
        self.last_mass: np.ndarray | None = None

    def invalidate(self) -> None:
        self._dirty = True

    def next_view(self, ctx: PlanContext) -> View:
        if self._dirty or not self.queue or self._since_plan >= self.settings.replan_after:
            self.queue = self.plan(ctx)
            self._since_plan = 0
            self._dirty = False
        self._since_plan += 1
        v = self.queue.pop(0)
        if v.purpose == "revisit" and v.track_id and ctx.tracker is not None:
            # Aim a single-view revisit at the latest prediction, not the one of planning time.
            tr = next((t for t in ctx.tracker.tracks if t.id == v.track_id), None)
            if tr is not None and (not tr.confirmed or self._window_half(tr, ctx) is None):
                mu, _ = tr.predict(ctx.t_ns)
                v = View(self.clip(mu[0], mu[1]), "revisit", tr.id)
        return v

    def _window_half(self, tr, ctx: PlanContext):
        """Half-size of a track's sampling window, or None when one view covers it.

        ``window_sigma`` sigma of the prediction, less half the target's size: a view
        anywhere over a large target (a vehicle wider than the view) still sees it.
        """
        _, P = tr.predict(ctx.t_ns)
        half = self.settings.window_sigma * np.sqrt(np.diag(P)[:2]) - 0.5 * np.asarray(tr.size_deg, dtype=np.float64)
        fp = np.asarray(ctx.footprint_half)
        return None if np.all(half <= 0.8 * fp) else np.maximum(half, fp)

    def _revisit_views(self, ctx: PlanContext, limit: int) -> list[View]:
        s = self.settings
        fp = np.asarray(ctx.footprint_half)
        due = []
        for tr in ctx.tracker.tracks if ctx.tracker is not None else []:
            sig = tr.drift_sigma_deg(ctx.t_ns)
            age = (ctx.t_ns - tr.last_look_ns) * 1e-9
            if not tr.confirmed:
                pri = 10.0 + age
            else:
                pri = max(sig / (s.revisit_sigma_frac * fp.min()), age / s.revisit_max_s)
                if pri < 1.0:
                    continue
            due.append((pri, tr))
        due.sort(key=lambda p: -p[0])
        views: list[View] = []
        for _, tr in due:
            if len(views) >= limit:
                break
            mu, P = tr.predict(ctx.t_ns)
            half = self._window_half(tr, ctx) if tr.confirmed else None  # a tentative track: one confirming look
            if half is None:
                views.append(View(self.clip(mu[0], mu[1]), "revisit", tr.id))
                continue
            # Tile the window with footprints; most probable tiles first.
            nx = int(math.ceil(2 * half[0] / (2 * fp[0] * (1 - s.overlap))))
            ny = int(math.ceil(2 * half[1] / (2 * fp[1] * (1 - s.overlap))))
            ox = (np.arange(nx) - (nx - 1) / 2) * 2 * fp[0] * (1 - s.overlap)
            oy = (np.arange(ny) - (ny - 1) / 2) * 2 * fp[1] * (1 - s.overlap)
            tiles = np.array([(mu[0] + a, mu[1] + b) for b in oy for a in ox])
            Pi = np.linalg.inv(P[:2, :2])
            d = tiles - mu[:2]
            dens = np.einsum("ni,ij,nj->n", d, Pi, d)
            for k in np.argsort(dens)[: s.max_window_views]:
                views.append(View(self.clip(*tiles[k]), "revisit", tr.id))
        return views[:limit] if limit else []

    def plan(self, ctx: PlanContext) -> list[View]:
        s = self.settings
        self.rounds += 1
        fp = np.asarray(ctx.footprint_half, dtype=np.float64)
        n_rev = max(1, int(math.floor(s.max_revisit_share * s.batch_views)))
        views = self._revisit_views(ctx, n_rev)
        if ctx.ppm is not None:
            ppm = ctx.ppm
            grid = ppm.grid
            tracks = ctx.tracker.tracks if ctx.tracker is not None else ()
            mass = ppm.mass(ctx.t_ns, tracks, fp)
            self.last_mass = mass
            k = (max(1, int(round(2 * fp[0] / grid.cell_deg))), max(1, int(round(2 * fp[1] / grid.cell_deg))))
            value = cv2.boxFilter(mass, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
            keep = (1 - s.overlap) * fp
            for v in views:
                rows, cols = grid.box(v.cmd, keep * 2)
                value[rows, cols] = 0.0
            value[value < max(s.min_value_frac, 1e-6) * max(float(value.max()), 1e-30)] = 0.0
            w = np.power(np.clip(value, 0, None).astype(np.float64), s.sharpness)
            flat = w.ravel()
            cs = None
            draws: list[int] = []
            if float(value.max(initial=0.0)) < s.explore_min_value and ctx.tracker is not None:
                # Nothing left worth exploring (all likely places searched or explained): spend the
                # round on the tracks instead, oldest look first, rather than on the sky.
                have = {v.track_id for v in views}
                spare = sorted((t for t in ctx.tracker.confirmed() if t.id not in have
                                and (ctx.t_ns - t.last_look_ns) * 1e-9 >= s.min_revisit_gap_s),
                               key=lambda t: t.last_look_ns)
                for tr in spare[: s.batch_views - len(views)]:
                    mu, _ = tr.predict(ctx.t_ns)
                    views.append(View(self.clip(mu[0], mu[1]), "revisit", tr.id))
            while len(views) < s.batch_views:
                if s.sampling == "greedy":
                    idx = int(np.argmax(flat))
                    if not flat[idx] > 0:
                        break
                else:
                    # Draws from the weights of the round's start, rejecting suppressed ones: the same
                    # distribution as drawing afresh from what is left, with one cumulative sum per round.
                    if not draws:
                        cs = np.cumsum(flat)
                        if not cs[-1] > 0:
                            break
                        u = self.rng.random(4 * s.batch_views) * cs[-1]
                        draws = list(np.minimum(np.searchsorted(cs, u, side="right"), flat.size - 1))
                    idx = int(draws.pop(0))
                    if not flat[idx] > 0:
                        continue
                i, j = divmod(idx, grid.shape[1])
                c = (float(grid.xs[j]), float(grid.ys[i]))
                views.append(View(self.clip(*c), "explore"))
                rows, cols = grid.box(c, keep * 2)
                w[rows, cols] = 0.0
        if not views:  # nothing known at all: look at a random place
            (x0, x1), (y0, y1) = self.limits_deg
            views.append(View((float(self.rng.uniform(x0, x1)), float(self.rng.uniform(y0, y1))), "explore"))
        pts = np.array([v.cmd for v in views])
        order = order_views(ctx.current_cmd, pts, self.motion, s.two_opt)
        return [views[i] for i in order]
