"""Two-axis galvo mirror interface, in mechanical degrees.

Axis x is mirror 1 (nearest the camera or laser), axis y is mirror 2.
Commands outside the configured limits are refused with ``LimitError``;
they are never clipped.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

from foveate.drivers.device import Device
from foveate.system.clock import Clock
from foveate.system.errors import DeviceTimeoutError, LimitError
from foveate.system.types import GalvoState

Limits = tuple[tuple[float, float], tuple[float, float]]


class Galvo(Device):
    """A two-axis galvo. Backends implement ``_do_move_to`` and ``_do_position``.

    ``wait_settled`` polls ``position`` on the injected clock by default; a
    backend that knows better (a simulator, a controller with a settle
    trigger) overrides ``_do_wait_settled``.
    """

    kind = "galvo"

    def __init__(
        self,
        name: str,
        clock: Clock,
        limits_deg: Limits = ((-10.0, 10.0), (-10.0, 10.0)),
        park_deg: tuple[float, float] = (0.0, 0.0),
        poll_interval_s: float = 50e-6,
    ) -> None:
        super().__init__(name, clock)
        (x0, x1), (y0, y1) = limits_deg
        if not (x0 < x1 and y0 < y1):
            raise ValueError(f"{name}: limits_deg must be (min, max) per axis with min < max, got {limits_deg}")
        self.limits_deg: Limits = ((float(x0), float(x1)), (float(y0), float(y1)))
        self.park_deg = (float(park_deg[0]), float(park_deg[1]))
        self._check_limits(*self.park_deg, what="park_deg")
        self.poll_interval_s = float(poll_interval_s)
        self._commanded_deg = self.park_deg
        self.moves = 0

    def _check_limits(self, theta_x_deg: float, theta_y_deg: float, what: str = "command") -> None:
        for axis, value, (lo, hi) in (("x", theta_x_deg, self.limits_deg[0]), ("y", theta_y_deg, self.limits_deg[1])):
            if not math.isfinite(value):
                raise LimitError(f"{self.name}: {what} theta_{axis}_deg={value} is not a finite number")
            if not lo <= value <= hi:
                raise LimitError(f"{self.name}: {what} theta_{axis}_deg={value:.6g} outside limits [{lo:g}, {hi:g}] deg")

    @property
    def commanded_deg(self) -> tuple[float, float]:
        return self._commanded_deg

    def move_to(self, theta_x_deg: float, theta_y_deg: float) -> None:
        """Command both axes (mechanical degrees). Returns at once; see ``wait_settled``."""
        self._check_open()
        theta_x_deg, theta_y_deg = float(theta_x_deg), float(theta_y_deg)
        self._check_limits(theta_x_deg, theta_y_deg)
        self._do_move_to(theta_x_deg, theta_y_deg)
        self._commanded_deg = (theta_x_deg, theta_y_deg)
        self.moves += 1

    def position(self) -> GalvoState:
        """Commanded and measured angles now."""
        self._check_open()
        return self._do_position()

    def measured_at(self, t_ns: int) -> tuple[float, float] | None:
        """Measured angles (deg) at a past host time ``t_ns`` from the galvo's position record, or None.

        A galvo that logs its position sensor with timestamps (a servo driver's
        position buffer, a DAQ on the position outputs) returns where the mirrors
        were at ``t_ns``, e.g. a frame's mid-exposure ``Frame.t_ns``; one without
        such a record returns None (the default), and callers use the commanded angles.
        """
        self._check_open()
        return self._do_measured_at(int(t_ns))

    def wait_settled(self, timeout_s: float = 0.1) -> GalvoState:
        """Block (on the injected clock) until in position; ``DeviceTimeoutError`` after ``timeout_s``."""
        self._check_open()
        if not timeout_s > 0:
            raise ValueError(f"{self.name}: timeout_s must be > 0, got {timeout_s}")
        return self._do_wait_settled(float(timeout_s))

    def park(self) -> None:
        """Move to the configured park position."""
        self.move_to(*self.park_deg)

    def close(self) -> None:
        if self.is_open:
            try:
                self.park()
            except Exception:  # noqa: BLE001 - still close the transport
                self.log.exception("could not park while closing")
        super().close()

    @abstractmethod
    def _do_move_to(self, theta_x_deg: float, theta_y_deg: float) -> None: ...

    @abstractmethod
    def _do_position(self) -> GalvoState: ...

    def _do_measured_at(self, t_ns: int) -> tuple[float, float] | None:
        return None

    def _do_wait_settled(self, timeout_s: float) -> GalvoState:
        deadline = self.clock.now_ns() + int(timeout_s * 1e9)
        while True:
            state = self._do_position()
            if state.settled:
                return state
            if self.clock.now_ns() >= deadline:
                raise DeviceTimeoutError(f"{self.name}: not settled within {timeout_s * 1e3:.3g} ms at {state.measured_deg}")
            self.clock.sleep_s(self.poll_interval_s)

    def _do_status(self) -> dict[str, Any]:
        state = self._do_position()
        return {
            "commanded_deg": [float(v) for v in state.commanded_deg],
            "measured_deg": [round(float(v), 6) for v in state.measured_deg],
            "settled": state.settled,
            "limits_deg": [list(a) for a in self.limits_deg],
            "moves": self.moves,
        }
