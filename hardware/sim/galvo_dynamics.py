"""Closed-loop galvo axis: a second-order servo tracking a slew- and acceleration-limited reference.

A real servo driver clamps how fast its position reference may move (the
"slew-rate clamp" of galvo drivers), and the mirror follows that reference
through the closed loop ``x'' = wn^2 (r - x) - 2 zeta wn x'``. Here the
reference after each command is a time-optimal profile (accelerate at
``accel_deg_s2``, cruise at ``slew_deg_s``, decelerate) from the reference's
current position and velocity to the target; the loop's response to each
piecewise-quadratic segment is solved in closed form, so ``state(t)`` is
exact at any time without an integration step. Small steps are limited by
the loop (``~4 / (zeta wn)``), large ones by the slew limit (time grows with
the step size), as on real scanners.

Errors of a real axis, kept here so every simulated galvo (direct sim
backend, simulated serial controller) carries the same ones:

* ``gain_error`` / ``offset_error_deg``: the true mechanical mirror angle is
  ``(1 + gain_error) * position + offset_error_deg`` while the servo believes
  it is at ``position``. Only a calibration can see them; the twin's true
  ``GalvoCamera`` carries them as the mirrors' gain and offset.
* ``noise_deg``: RMS position wobble (~15 µrad), a deterministic band-limited
  function of time (a few incommensurate tones with seeded phases), so the
  same instant always gives the same wobble and the rendered view and the
  position sensor agree.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

#: Wobble tones (Hz) of the position noise; incommensurate so the sum never repeats visibly.
_WOBBLE_HZ = (173.0, 611.0, 1327.0, 2459.0)


@dataclass
class _Segment:
    """Reference ``r(tau) = p + v tau + a tau^2 / 2`` from ``t0_s``; plant state at its start."""

    t0_s: float
    p: float
    v: float
    a: float
    x0: float = 0.0
    xd0: float = 0.0


@dataclass
class SecondOrderAxis:
    """One galvo axis in command degrees; see the module docstring for the model.

    Public API (used by the sim galvo and the simulated serial controller):
    ``command(target_deg, t_s)``, ``state(t_s) -> (pos_deg, vel_deg_s)``,
    ``settle_time_s(tol_deg)`` (absolute time after which ``|pos - target| <
    tol_deg`` for good), ``target_deg``, plus ``reference(t_s)``,
    ``actual_deg(t_s)`` (position plus wobble: what the mirror really does, in
    command units) and ``mechanical_deg(t_s)`` (true mirror angle).

    ``slew_deg_s`` / ``accel_deg_s2`` of ``None`` mean unlimited (an ideal
    step reference, the pure linear second-order response).
    """

    natural_freq_hz: float = 2500.0
    damping: float = 0.7
    position_deg: float = 0.0
    slew_deg_s: float | None = 4000.0
    accel_deg_s2: float | None = 4.0e7
    gain_error: float = 0.0
    offset_error_deg: float = 0.0
    noise_deg: float = 0.0
    seed: int = 0
    _segments: list[_Segment] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.damping < 1.0:
            raise ValueError(f"damping must be in (0, 1), got {self.damping}")
        if not self.natural_freq_hz > 0:
            raise ValueError(f"natural_freq_hz must be > 0, got {self.natural_freq_hz}")
        for name in ("slew_deg_s", "accel_deg_s2"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be > 0 or None, got {v}")
        if self.noise_deg < 0:
            raise ValueError(f"noise_deg must be >= 0, got {self.noise_deg}")
        self._wn = 2 * math.pi * self.natural_freq_hz
        self._wd = self._wn * math.sqrt(1 - self.damping**2)
        self.target_deg = float(self.position_deg)
        p = float(self.position_deg)
        self._segments = [_Segment(0.0, p, 0.0, 0.0, p, 0.0)]
        self._starts = [0.0]
        rng = np.random.default_rng(self.seed)
        self._phases = rng.uniform(0, 2 * math.pi, len(_WOBBLE_HZ))
        self._phases_f = [float(p) for p in self._phases]
        self._wobble_amp = self.noise_deg * math.sqrt(2.0 / len(_WOBBLE_HZ))

    # ------------------------------------------------------------ plant solution
    def _particular(self, s: _Segment) -> tuple[float, float, float]:
        """Coefficients (A, B, C) of the forced response ``A + B tau + C tau^2`` to the segment's reference."""
        z, wn = self.damping, self._wn
        C = s.a / 2.0
        B = s.v - 2.0 * z * s.a / wn
        A = s.p - (s.a + 2.0 * z * wn * B) / wn**2
        return A, B, C

    def _eval(self, s: _Segment, tau: float) -> tuple[float, float]:
        z, wn, wd = self.damping, self._wn, self._wd
        A, B, C = self._particular(s)
        e0 = s.x0 - A
        ed0 = s.xd0 - B
        a = e0
        b = (ed0 + z * wn * e0) / wd
        decay = math.exp(-z * wn * tau)
        c, sn = math.cos(wd * tau), math.sin(wd * tau)
        e = decay * (a * c + b * sn)
        de = decay * (-z * wn * (a * c + b * sn) + wd * (-a * sn + b * c))
        return A + B * tau + C * tau * tau + e, B + 2 * C * tau + de

    def _segment_at(self, t_s: float) -> _Segment:
        i = bisect.bisect_right(self._starts, t_s) - 1
        return self._segments[max(i, 0)]

    def state(self, t_s: float) -> tuple[float, float]:
        """Servo position (deg) and velocity (deg/s) at time ``t_s`` (before any command: the initial position)."""
        s = self._segment_at(t_s)
        return self._eval(s, max(0.0, t_s - s.t0_s))

    def reference(self, t_s: float) -> tuple[float, float]:
        """Position and velocity of the limited reference the loop tracks at ``t_s``."""
        s = self._segment_at(t_s)
        tau = max(0.0, t_s - s.t0_s)
        return s.p + s.v * tau + 0.5 * s.a * tau * tau, s.v + s.a * tau

    # ---------------------------------------------------------------- commands
    def command(self, target_deg: float, t_s: float) -> None:
        """Start moving to ``target_deg`` at time ``t_s`` (times of successive commands must not decrease)."""
        target = float(target_deg)
        x, xd = self.state(t_s)
        r, rv = self.reference(t_s)
        if self.slew_deg_s is None and self.accel_deg_s2 is None:
            profile = [(t_s, target, 0.0, 0.0)]
        else:
            profile = _time_optimal(r, rv, target, self.slew_deg_s or math.inf, self.accel_deg_s2 or math.inf, t_s)
        # Keep the history before t_s (so state() of past times stays what it was), replace the future.
        keep = bisect.bisect_right(self._starts, t_s)
        segs = self._segments[max(0, keep - 32):keep]  # bounded history: past queries cover an exposure
        prev = _Segment(t_s, 0.0, 0.0, 0.0, x, xd)
        new: list[_Segment] = []
        for i, (t0, p, v, a) in enumerate(profile):
            if i == 0:
                seg = _Segment(t0, p, v, a, x, xd)
            else:
                xs, xds = self._eval(prev, t0 - prev.t0_s)
                seg = _Segment(t0, p, v, a, xs, xds)
            new.append(seg)
            prev = seg
        if segs and segs[-1].t0_s == t_s:
            segs.pop()
        self._segments = segs + new
        self._starts = [s.t0_s for s in self._segments]
        self.target_deg = target

    def settle_time_s(self, tol_deg: float) -> float:
        """Absolute time after which ``|position - target| < tol_deg`` for good (exact envelope bound)."""
        s = self._segments[-1]
        z, wn, wd = self.damping, self._wn, self._wd
        e0 = s.x0 - self.target_deg
        amp = math.hypot(e0, (s.xd0 + z * wn * e0) / wd)
        if amp <= tol_deg:
            return s.t0_s
        return s.t0_s + math.log(amp / tol_deg) / (z * wn)

    def move_time_s(self) -> float:
        """Start time of the last reference segment: when the limited reference reaches the target."""
        return self._segments[-1].t0_s

    # ------------------------------------------------------------------ errors
    def wobble_deg(self, t_s: float | np.ndarray) -> float | np.ndarray:
        """Deterministic position wobble (RMS ``noise_deg``) at ``t_s``."""
        if self._wobble_amp == 0.0:
            return 0.0 * np.asarray(t_s) if isinstance(t_s, np.ndarray) else 0.0
        if not isinstance(t_s, np.ndarray):
            return self._wobble_amp * sum(math.sin(2 * math.pi * f * t_s + ph) for f, ph in zip(_WOBBLE_HZ, self._phases_f))
        t = np.asarray(t_s, dtype=np.float64)
        w = sum(np.sin(2 * math.pi * f * t + ph) for f, ph in zip(_WOBBLE_HZ, self._phases))
        out = self._wobble_amp * w
        return float(out) if out.ndim == 0 else out

    def actual_deg(self, t_s: float) -> float:
        """Where the mirror really is, in command units: servo position plus wobble."""
        return self.state(t_s)[0] + self.wobble_deg(t_s)

    def mechanical_deg(self, t_s: float) -> float:
        """True mechanical mirror angle (deg): gain and offset errors applied to ``actual_deg``."""
        return (1.0 + self.gain_error) * self.actual_deg(t_s) + self.offset_error_deg


def _time_optimal(p0: float, v0: float, p1: float, vmax: float, amax: float,
                  t0: float) -> list[tuple[float, float, float, float]]:
    """Segments ``(t_start, p, v, a)`` of the fastest reference from (p0, v0) to rest at p1.

    Bang-coast-bang with |v| <= vmax and |a| <= amax; an infinite ``amax`` gives
    a velocity-limited ramp, an infinite ``vmax`` a triangular profile.
    """
    d = p1 - p0
    if d == 0.0 and v0 == 0.0:
        return [(t0, p1, 0.0, 0.0)]
    if math.isinf(amax):
        if math.isinf(vmax):
            return [(t0, p1, 0.0, 0.0)]
        sgn = 1.0 if d > 0 else -1.0
        T = abs(d) / vmax
        return [(t0, p0, sgn * vmax, 0.0), (t0 + T, p1, 0.0, 0.0)]
    stop = v0 * abs(v0) / (2 * amax)  # distance covered while braking from v0
    sgn = 1.0 if d - stop >= 0 else -1.0
    if d - stop == 0.0:
        sgn = -1.0 if v0 > 0 else 1.0  # pure braking ends exactly at the target
        T = abs(v0) / amax
        return [(t0, p0, v0, sgn * amax), (t0 + T, p1, 0.0, 0.0)]
    u0 = sgn * v0  # initial speed along the move direction (may be negative)
    D = sgn * d
    vp = math.sqrt(max(amax * D + u0 * u0 / 2.0, 0.0))
    cruise = 0.0
    if vp > vmax:
        vp = vmax
        cruise = (D - (vp * vp - u0 * u0) / (2 * amax) - vp * vp / (2 * amax)) / vp
    t_acc = max((vp - u0) / amax, 0.0)
    t_dec = vp / amax
    segs = []
    t, p, v = t0, p0, v0
    segs.append((t, p, v, sgn * amax))
    p += v * t_acc + 0.5 * sgn * amax * t_acc**2
    v = sgn * vp
    t += t_acc
    if cruise > 0:
        segs.append((t, p, v, 0.0))
        p += v * cruise
        t += cruise
    segs.append((t, p, v, -sgn * amax))
    t += t_dec
    segs.append((t, p1, 0.0, 0.0))
    return segs
