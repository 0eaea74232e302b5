"""Targets in mirror-command space: detections -> measurements -> Kalman tracks.

A detection's centre (search pixels) becomes the command that would centre
it, ``z = theta + J (uv - c)`` with the geometry's local Jacobian ``J`` at the
measured mirror angle; its covariance is ``J Sigma_px J^T`` plus the
mirror's pointing noise. Each track is a constant-velocity Kalman filter on
``[x, y, vx, vy]`` (command degrees and deg/s) with white-acceleration
process noise, so repeated looks are fused by inverse-variance weighting and
the prediction's covariance says how far the target may have gone: the
planner sizes its sampling window from it.

Association per frame: tracks compete for the frame's detections of their
class, Hungarian on the Mahalanobis distance with a chi-square gate. A track
whose predicted box lies wholly inside the view but is not found collects a
miss; tracks survive between revisits (only looks count as
misses) and end after ``max_misses`` looks in a row or ``timeout_s``
without a detection.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from foveate.system.search.settings import TrackerSettings
from foveate.system.types import Detection


@dataclass
class Measurement:
    """One detection in command space."""

    cls: int
    label: str
    score: float
    z: np.ndarray  # (2,) command deg
    R: np.ndarray  # (2, 2) deg^2
    t_ns: int
    size_deg: tuple[float, float] = (0.0, 0.0)


def truncated_cov(d: Detection, image_wh: tuple[int, int], border_px: float = 2.0) -> np.ndarray:
    """The detection's centre covariance (px^2), widened along each axis where its box touches the image border.

    A box cut by the border shows only part of the target: its centre is that
    of the visible part, and the true centre may lie up to a box size beyond.
    """
    cov = np.array(d.centre_cov, dtype=np.float64, copy=True)
    x0, y0, x1, y1 = d.box_xyxy
    W, H = image_wh
    if x0 <= border_px or x1 >= W - border_px:
        cov[0, 0] += (x1 - x0) ** 2
    if y0 <= border_px or y1 >= H - border_px:
        cov[1, 1] += (y1 - y0) ** 2
    return cov


def to_measurements(detections: list[Detection], geometry, cmd, t_ns: int, galvo_sigma_deg: float,
                    min_score: float = 0.0) -> list[Measurement]:
    """Detections of one frame seen at measured command ``cmd`` -> measurements in command space."""
    dets = [d for d in detections if d.score >= min_score]
    if not dets:
        return []
    uv = np.array([d.centre_xy for d in dets], dtype=np.float64)
    z, J = geometry.search_to_command(uv, cmd)
    out = []
    for k, d in enumerate(dets):
        R = J @ truncated_cov(d, geometry.search_wh) @ J.T + np.eye(2) * galvo_sigma_deg**2
        w, h = d.size_wh
        size = (float(np.abs(J[:, 0]).sum() * w), float(np.abs(J[:, 1]).sum() * h))
        out.append(Measurement(d.cls, d.label, float(d.score), z[k].copy(), R, int(t_ns), size))
    return out


@dataclass
class Track:
    """One target's filter state; ``x`` and ``P`` are replaced on update, never changed in place
    (``predict`` caches its result per time and state object)."""

    id: int
    cls: int
    label: str
    x: np.ndarray  # (4,) [x, y, vx, vy]
    P: np.ndarray  # (4, 4)
    t_ns: int
    q: float  # acceleration PSD (deg/s^2)^2 * s
    first_t_ns: int
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    last_seen_ns: int = 0
    last_look_ns: int = 0
    score: float = 0.0
    size_deg: tuple[float, float] = (0.0, 0.0)
    history: list = field(default_factory=list)

    _cache: tuple | None = None

    def predict(self, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean (4,) and covariance (4, 4) at ``t_ns`` (no state change; cached per time and state)."""
        c = self._cache
        if c is not None and c[0] == t_ns and c[1] is self.x and c[2] is self.P:
            return c[3], c[4]
        dt = max(0.0, (t_ns - self.t_ns) * 1e-9)
        F = _F(dt)
        x, P = F @ self.x, F @ self.P @ F.T + _Q(dt, self.q)
        self._cache = (t_ns, self.x, self.P, x, P)
        return x, P

    def sigma_deg(self, t_ns: int) -> float:
        """Largest 1-sigma of the predicted position."""
        _, P = self.predict(t_ns)
        return float(np.sqrt(np.linalg.eigvalsh(P[:2, :2])[-1]))

    def drift_sigma_deg(self, t_ns: int) -> float:
        """Largest 1-sigma of how far the target may have moved since the last update (prediction minus posterior)."""
        _, P = self.predict(t_ns)
        G = P[:2, :2] - self.P[:2, :2]
        return float(np.sqrt(max(np.linalg.eigvalsh(G)[-1], 0.0)))

    def as_dict(self, t_ns: int | None = None) -> dict:
        x, P = self.predict(self.t_ns if t_ns is None else t_ns)
        return {"id": self.id, "cls": self.cls, "label": self.label, "x": x.tolist(), "P_pos": P[:2, :2].tolist(),
                "confirmed": self.confirmed, "hits": self.hits, "misses": self.misses,
                "first_t_ns": self.first_t_ns, "last_seen_ns": self.last_seen_ns}


def _F(dt: float) -> np.ndarray:
    return np.array([[1.0, 0, dt, 0], [0, 1.0, 0, dt], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])


def _Q(dt: float, q: float) -> np.ndarray:
    a, b, c = q * dt**3 / 3, q * dt**2 / 2, q * dt
    return np.array([[a, 0, b, 0], [0, a, 0, b], [b, 0, c, 0], [0, b, 0, c]])


def _mahalanobis2(d: np.ndarray, S: np.ndarray) -> float:
    """d^T S^-1 d for a 2-vector and a 2x2 covariance (closed form)."""
    det = S[0, 0] * S[1, 1] - S[0, 1] * S[1, 0]
    if not det > 0:
        return float("inf")
    return float((S[1, 1] * d[0] * d[0] - (S[0, 1] + S[1, 0]) * d[0] * d[1] + S[0, 0] * d[1] * d[1]) / det)


_H = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])


class Tracker:
    """Kalman tracks in command space with gated association; see the module docstring."""

    def __init__(self, settings: TrackerSettings) -> None:
        self.settings = settings
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self.created = 0
        self.dropped = 0

    def _new_track(self, m: Measurement) -> Track:
        s = self.settings
        P = np.zeros((4, 4))
        P[:2, :2] = m.R
        P[2, 2] = P[3, 3] = s.init_speed_deg_s**2
        tr = Track(next(self._ids), m.cls, m.label, np.array([m.z[0], m.z[1], 0.0, 0.0]), P, m.t_ns,
                   s.accel_deg_s2**2, m.t_ns, confirmed=s.confirm_hits <= 1 or m.score >= s.confirm_score,
                   last_seen_ns=m.t_ns,
                   last_look_ns=m.t_ns, score=m.score, size_deg=m.size_deg)
        self.created += 1
        return tr

    def _kf_update(self, tr: Track, m: Measurement) -> None:
        x, P = tr.predict(m.t_ns)
        S = _H @ P @ _H.T + m.R
        K = P @ _H.T @ np.linalg.inv(S)
        tr.x = x + K @ (m.z - _H @ x)
        I_KH = np.eye(4) - K @ _H
        tr.P = I_KH @ P @ I_KH.T + K @ m.R @ K.T  # Joseph form: stays symmetric positive definite
        tr.t_ns = m.t_ns
        tr.hits += 1
        tr.misses = 0
        tr.last_seen_ns = tr.last_look_ns = m.t_ns
        tr.score = max(tr.score * 0.5 + m.score * 0.5, m.score)
        tr.size_deg = m.size_deg
        if tr.hits >= self.settings.confirm_hits:
            tr.confirmed = True

    def update(self, t_ns: int, view_cmd, half_wh, measurements: list[Measurement]) -> dict:
        """Fuse one frame's measurements; ``view_cmd``/``half_wh`` say which region the frame covered.

        Returns ``{"matched": [(track_id, k)], "new": [track_id], "missed": [track_id]}``.
        """
        s = self.settings
        cx, cy = float(view_cmd[0]), float(view_cmd[1])
        hw, hh = float(half_wh[0]), float(half_wh[1])
        expected = []  # tracks the frame must have seen whole: a miss only counts for those
        for tr in self.tracks:
            mu, _ = tr.predict(t_ns)
            mx = max(hw - 0.5 * tr.size_deg[0], 0.5 * hw)
            my = max(hh - 0.5 * tr.size_deg[1], 0.5 * hh)
            if abs(mu[0] - cx) <= mx and abs(mu[1] - cy) <= my:
                expected.append(tr)
        # Candidates: expected tracks plus any track a measurement falls near (it may have left its prediction box).
        cand = list(self.tracks)
        matched: list[tuple[int, int]] = []
        used_t: set[int] = set()
        used_m: set[int] = set()
        if cand and measurements:
            big = 1e9
            cost = np.full((len(cand), len(measurements)), big)
            for a, tr in enumerate(cand):
                mu, P = tr.predict(t_ns)
                for b, m in enumerate(measurements):
                    if m.cls != tr.cls:
                        continue
                    d = m.z - mu[:2]
                    if abs(d[0]) > 3.0 or abs(d[1]) > 3.0:
                        continue
                    q = _mahalanobis2(d, P[:2, :2] + m.R)
                    if q <= s.gate_chi2:
                        cost[a, b] = q
            rows, cols = linear_sum_assignment(cost)
            for a, b in zip(rows, cols):
                if cost[a, b] < big:
                    self._kf_update(cand[a], measurements[b])
                    matched.append((cand[a].id, int(b)))
                    used_t.add(cand[a].id)
                    used_m.add(int(b))
        new = []
        for b, m in enumerate(measurements):
            if b not in used_m:
                tr = self._new_track(m)
                self.tracks.append(tr)
                new.append(tr.id)
        missed = []
        for tr in expected:
            if tr.id not in used_t:
                tr.misses += 1
                tr.last_look_ns = t_ns
                missed.append(tr.id)
        if matched or new:
            self._merge(t_ns)
        self.prune(t_ns)
        return {"matched": matched, "new": new, "missed": missed}

    def _merge(self, t_ns: int) -> None:
        """Two tracks of one class on the same target: keep the older, fuse the other's estimate."""
        if len(self.tracks) < 2:
            return
        keep: list[Track] = []
        pred = {id(t): t.predict(t_ns) for t in self.tracks}
        for tr in sorted(self.tracks, key=lambda t: t.first_t_ns):
            mu, P = pred[id(tr)]
            dup = None
            for k in keep:
                if k.cls != tr.cls:
                    continue
                mk, Pk = pred[id(k)]
                d = mu[:2] - mk[:2]
                if abs(d[0]) > 1.0 or abs(d[1]) > 1.0:
                    continue
                if _mahalanobis2(d, P[:2, :2] + Pk[:2, :2]) <= self.settings.merge_chi2:
                    dup = k
                    break
            if dup is None:
                keep.append(tr)
            elif tr.last_seen_ns >= dup.last_seen_ns:
                m = Measurement(tr.cls, tr.label, tr.score, mu[:2], P[:2, :2], t_ns, tr.size_deg)
                self._kf_update(dup, m)
                dup.hits += tr.hits - 1
                dup.confirmed = dup.confirmed or tr.confirmed
                dup.last_seen_ns = max(dup.last_seen_ns, tr.last_seen_ns)
        if len(keep) != len(self.tracks):
            self.dropped += len(self.tracks) - len(keep)
            self.tracks = keep

    def prune(self, t_ns: int) -> None:
        s = self.settings
        alive = []
        for tr in self.tracks:
            limit = s.max_misses if tr.confirmed else 1
            if tr.misses >= limit or (t_ns - tr.last_seen_ns) * 1e-9 > s.timeout_s:
                self.dropped += 1
                continue
            alive.append(tr)
        self.tracks = alive

    def confirmed(self) -> list[Track]:
        return [t for t in self.tracks if t.confirmed]
