"""Frame camera interface (wide camera, search camera)."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

from foveate.drivers.device import Device
from foveate.system.clock import Clock
from foveate.system.types import Frame


class FrameCamera(Device):
    """A camera that delivers ``Frame`` objects stamped at exposure time.

    Backends implement ``_do_read`` and may override ``_do_set_exposure``.
    ``frames_dropped`` counts frames the backend knows it lost (sequence gaps,
    buffer overflow); it is never reset silently.
    """

    kind = "frame_camera"

    def __init__(
        self,
        name: str,
        clock: Clock,
        width: int,
        height: int,
        exposure_s: float = 1e-3,
        exposure_range_s: tuple[float, float] = (1e-6, 1.0),
    ) -> None:
        super().__init__(name, clock)
        if width <= 0 or height <= 0:
            raise ValueError(f"{name}: image size must be positive, got {width}x{height}")
        self.width = int(width)
        self.height = int(height)
        self.exposure_range_s = (float(exposure_range_s[0]), float(exposure_range_s[1]))
        self._exposure_s = float(exposure_s)
        self.frames_read = 0
        self.frames_dropped = 0

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the delivered images."""
        return (self.height, self.width)

    @property
    def exposure_s(self) -> float:
        return self._exposure_s

    def set_exposure(self, exposure_s: float) -> None:
        """Set the exposure time in seconds; refuses values outside ``exposure_range_s``."""
        self._check_open()
        lo, hi = self.exposure_range_s
        if not (math.isfinite(exposure_s) and lo <= exposure_s <= hi):
            raise ValueError(f"{self.name}: exposure_s={exposure_s} outside [{lo}, {hi}] s")
        self._do_set_exposure(float(exposure_s))
        self._exposure_s = float(exposure_s)

    def read(self, timeout_s: float = 1.0) -> Frame:
        """The next frame; raises ``DeviceTimeoutError`` if none arrives within ``timeout_s``."""
        self._check_open()
        if not timeout_s > 0:
            raise ValueError(f"{self.name}: timeout_s must be > 0, got {timeout_s}")
        frame = self._do_read(float(timeout_s))
        self.frames_read += 1
        return frame

    @abstractmethod
    def _do_read(self, timeout_s: float) -> Frame: ...

    def _do_set_exposure(self, exposure_s: float) -> None:
        pass

    def _do_status(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "exposure_s": self._exposure_s,
            "frames_read": self.frames_read,
            "frames_dropped": self.frames_dropped,
        }
