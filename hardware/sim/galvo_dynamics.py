"""Closed-loop galvo axis as a damped second-order system, solved in closed form.

Each command restarts the response from the current position and velocity,
so the trajectory is exact at any query time (no integration step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class SecondOrderAxis:
    """One axis: x'' = wn^2 (target - x) - 2 zeta wn x' (underdamped, 0 < zeta < 1)."""

    natural_freq_hz: float = 1800.0
    damping: float = 0.7
    position_deg: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.damping < 1.0:
            raise ValueError(f"damping must be in (0, 1), got {self.damping}")
        self._wn = 2 * math.pi * self.natural_freq_hz
        self._wd = self._wn * math.sqrt(1 - self.damping**2)
        self._t0_s = 0.0
        self._x0 = self.position_deg
        self._v0 = 0.0
        self.target_deg = self.position_deg

    def state(self, t_s: float) -> tuple[float, float]:
        """Position (deg) and velocity (deg/s) at time ``t_s``."""
        dt = max(0.0, t_s - self._t0_s)
        z, wn, wd = self.damping, self._wn, self._wd
        e0 = self._x0 - self.target_deg
        a = e0
        b = (self._v0 + z * wn * e0) / wd
        decay = math.exp(-z * wn * dt)
        c, s = math.cos(wd * dt), math.sin(wd * dt)
        e = decay * (a * c + b * s)
        de = decay * ((-z * wn) * (a * c + b * s) + (-a * wd * s + b * wd * c))
        return self.target_deg + e, de

    def command(self, target_deg: float, t_s: float) -> None:
        x, v = self.state(t_s)
        self._t0_s, self._x0, self._v0 = t_s, x, v
        self.target_deg = float(target_deg)

    def settle_time_s(self, tol_deg: float) -> float:
        """Absolute time after which |error| < tol_deg for good (envelope bound)."""
        z, wn, wd = self.damping, self._wn, self._wd
        e0 = self._x0 - self.target_deg
        amp = math.hypot(e0, (self._v0 + z * wn * e0) / wd)
        if amp <= tol_deg:
            return self._t0_s
        return self._t0_s + math.log(amp / tol_deg) / (z * wn)
