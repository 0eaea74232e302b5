"""Exposure-time stamps and dropped-frame counting shared by the frame-camera backends.

A frame's ``t_ns`` is the middle of its exposure on the host clock. What a
backend knows is when the frame *arrived* and, for cameras with a clock of
their own, the device's timestamp. Either way the estimate is::

    t_mid = t_end_of_exposure_on_host - exposure_s / 2
    t_end_of_exposure_on_host = arrival - latency_s

where ``latency_s`` is readout plus transfer (a constant per camera and
mode: measure it once, e.g. by filming an LED driven by the galvo
controller's trigger-out). With device timestamps the arrival time is
replaced by the device stamp mapped through a ``ClockSync`` in arrival mode
(the lower envelope of arrival minus device time), which removes the
transfer jitter; the constant latency still has to be given, because no
amount of arrival data can tell it from a clock offset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from foveate.system.clock import Clock
from foveate.system.timesync import ClockSync

DeviceStamp = Literal["none", "exposure_start", "exposure_end"]


@dataclass
class FrameTiming:
    """Per-camera stamping state: the device clock sync and the previous frame, for gap counting."""

    clock: Clock
    latency_s: float = 0.0
    device_stamp: DeviceStamp = "none"
    period_s: float | None = None  # free-running frame period; None when triggered or irregular
    sync: ClockSync = field(default_factory=lambda: ClockSync("arrival"))
    _prev_mid_ns: int | None = None

    def stamp(self, arrival_ns: int, exposure_s: float, device_t_ns: int | None = None) -> int:
        """Host-clock ns of the middle of the exposure."""
        exp_ns = int(round(exposure_s * 1e9))
        if device_t_ns is not None and self.device_stamp != "none":
            dev_end = device_t_ns + (exp_ns if self.device_stamp == "exposure_start" else 0)
            self.sync.add(dev_end, arrival_ns)
            end_ns = float(self.sync.to_host_ns(dev_end))
        else:
            end_ns = float(arrival_ns)
        return int(round(end_ns - self.latency_s * 1e9 - exp_ns / 2))

    def gap(self, mid_ns: int) -> int:
        """Frames missed between the previous frame and this one (free-running cameras with a known period)."""
        prev, self._prev_mid_ns = self._prev_mid_ns, mid_ns
        if prev is None or not self.period_s:
            return 0
        return max(0, int(round((mid_ns - prev) / (self.period_s * 1e9))) - 1)
