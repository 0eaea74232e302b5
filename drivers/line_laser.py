"""Line laser interface: on/off and relative power."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

from foveate.drivers.device import Device
from foveate.system.clock import Clock


class LineLaser(Device):
    """A line laser. Power is a fraction of full scale in [0, 1]; closing turns it off."""

    kind = "line_laser"

    def __init__(self, name: str, clock: Clock, power_frac: float = 1.0) -> None:
        super().__init__(name, clock)
        self._check_power(power_frac)
        self._power_frac = float(power_frac)
        self._on = False

    def _check_power(self, power_frac: float) -> None:
        if not (math.isfinite(power_frac) and 0.0 <= power_frac <= 1.0):
            raise ValueError(f"{self.name}: power_frac={power_frac} outside [0, 1]")

    @property
    def is_on(self) -> bool:
        return self._on

    @property
    def power_frac(self) -> float:
        return self._power_frac

    def on(self) -> None:
        self._check_open()
        self._do_set_output(True, self._power_frac)
        self._on = True

    def off(self) -> None:
        self._check_open()
        self._do_set_output(False, self._power_frac)
        self._on = False

    def set_power(self, power_frac: float) -> None:
        self._check_open()
        self._check_power(power_frac)
        self._do_set_output(self._on, float(power_frac))
        self._power_frac = float(power_frac)

    def close(self) -> None:
        # A laser is never left on by a closing program.
        if self.is_open and self._on:
            try:
                self.off()
            except Exception:  # noqa: BLE001 - still close the transport
                self.log.exception("could not switch the laser off while closing")
        super().close()

    @abstractmethod
    def _do_set_output(self, on: bool, power_frac: float) -> None: ...

    def _do_status(self) -> dict[str, Any]:
        return {"on": self._on, "power_frac": self._power_frac}
