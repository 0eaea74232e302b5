"""Injected clocks. Every device and loop takes a Clock instead of calling ``time``.

``MonotonicClock`` is wall time (optionally scaled); ``ManualClock`` only moves
when told to, so a simulated rig runs as fast as the CPU allows and tests are
deterministic: sleeping on a manual clock advances it instantly.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod


class Clock(ABC):
    """Monotonic time source in int64 nanoseconds."""

    #: True when time only advances through this object (simulation, tests).
    simulated: bool = False

    @abstractmethod
    def now_ns(self) -> int:
        """Current time in ns."""

    @abstractmethod
    def sleep_until_ns(self, t_ns: int) -> None:
        """Block until ``now_ns() >= t_ns`` (returns at once if already past)."""

    def sleep_ns(self, dt_ns: int) -> None:
        if dt_ns > 0:
            self.sleep_until_ns(self.now_ns() + int(dt_ns))

    def sleep_s(self, dt_s: float) -> None:
        self.sleep_ns(int(round(dt_s * 1e9)))

    def now_s(self) -> float:
        return self.now_ns() * 1e-9

    def now_us(self) -> int:
        return self.now_ns() // 1000


class MonotonicClock(Clock):
    """Wall-clock time from ``time.monotonic_ns``; ``time_scale`` > 1 runs faster than real time."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = float(time_scale)
        self._t0 = time.monotonic_ns()

    def now_ns(self) -> int:
        return int((time.monotonic_ns() - self._t0) * self.time_scale)

    def sleep_until_ns(self, t_ns: int) -> None:
        while True:
            remaining = t_ns - self.now_ns()
            if remaining <= 0:
                return
            time.sleep(remaining / self.time_scale * 1e-9)


class ManualClock(Clock):
    """Simulated time: starts at ``start_ns`` and advances on ``advance_ns`` or any sleep.

    Thread-safe; time never goes backwards.
    """

    simulated = True

    def __init__(self, start_ns: int = 0) -> None:
        self._t_ns = int(start_ns)
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        return self._t_ns

    def advance_ns(self, dt_ns: int) -> int:
        if dt_ns < 0:
            raise ValueError(f"cannot advance a clock backwards (dt_ns={dt_ns})")
        with self._lock:
            self._t_ns += int(dt_ns)
            return self._t_ns

    def sleep_until_ns(self, t_ns: int) -> None:
        with self._lock:
            if t_ns > self._t_ns:
                self._t_ns = int(t_ns)
