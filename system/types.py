"""Core data types shared by drivers, models and the run loop.

Conventions: events are a structured array ``x:u2, y:u2, t:i8 (µs), p:u1``;
frame timestamps are int64 ns on the injected clock; galvo angles are
mechanical degrees per axis; time ranges are half-open ``[start, end)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

EVENT_DTYPE = np.dtype([("x", "<u2"), ("y", "<u2"), ("t", "<i8"), ("p", "u1")])


def empty_events(n: int = 0) -> np.ndarray:
    """A zeroed event array of length ``n`` in the project dtype."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(x, y, t, p) -> np.ndarray:
    """Build an event array from four equal-length sequences (converted to the project dtype)."""
    x = np.asarray(x)
    n = x.shape[0]
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = x
    ev["y"] = y
    ev["t"] = t
    ev["p"] = p
    return ev


@dataclass(frozen=True)
class Frame:
    """One image from a frame camera.

    ``t_ns`` is the host-clock time of the middle of the exposure (never the
    arrival time); ``device_t_ns`` is the camera's own stamp when it has one.
    """

    image: np.ndarray  # (H, W) or (H, W, C)
    t_ns: int
    exposure_s: float
    seq: int
    source: str
    device_t_ns: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True)
class EventPacket:
    """Events of one sensor over the half-open time range ``[t_start_us, t_end_us)``.

    ``sensor_size`` is ``(width, height)``. An empty packet still covers its
    time range: it says "nothing happened", which is different from a gap.
    """

    events: np.ndarray
    sensor_size: tuple[int, int]
    t_start_us: int
    t_end_us: int
    source: str = ""

    def __post_init__(self) -> None:
        if self.events.dtype != EVENT_DTYPE:
            raise TypeError(f"events must have dtype {EVENT_DTYPE}, got {self.events.dtype}")
        if self.t_end_us < self.t_start_us:
            raise ValueError(f"t_end_us ({self.t_end_us}) < t_start_us ({self.t_start_us})")
        if len(self.events):
            t = self.events["t"]
            if t[0] < self.t_start_us or t[-1] >= self.t_end_us:
                raise ValueError(
                    f"event times [{t[0]}, {t[-1]}] fall outside the packet range "
                    f"[{self.t_start_us}, {self.t_end_us})"
                )

    def __len__(self) -> int:
        return int(self.events.shape[0])

    @property
    def duration_us(self) -> int:
        return self.t_end_us - self.t_start_us

    def slice_time(self, t0_us: int, t1_us: int) -> "EventPacket":
        """Events with ``t0_us <= t < t1_us`` (clamped to this packet's range); events must be time-sorted."""
        t0 = max(int(t0_us), self.t_start_us)
        t1 = max(min(int(t1_us), self.t_end_us), t0)
        t = self.events["t"]
        i0, i1 = np.searchsorted(t, [t0, t1], side="left")
        return EventPacket(self.events[i0:i1], self.sensor_size, t0, t1, self.source)

    @staticmethod
    def concatenate(packets: "list[EventPacket]") -> "EventPacket":
        """Join contiguous packets of one sensor into one."""
        if not packets:
            raise ValueError("no packets to concatenate")
        for a, b in zip(packets, packets[1:]):
            if a.t_end_us != b.t_start_us:
                raise ValueError(f"packets are not contiguous: {a.t_end_us} != {b.t_start_us}")
        return EventPacket(
            np.concatenate([p.events for p in packets]),
            packets[0].sensor_size,
            packets[0].t_start_us,
            packets[-1].t_end_us,
            packets[0].source,
        )


@dataclass(frozen=True)
class GalvoState:
    """Commanded and measured mechanical angles (degrees) of a two-axis galvo at ``t_ns``."""

    commanded_deg: tuple[float, float]
    measured_deg: tuple[float, float]
    settled: bool
    t_ns: int
    device_t_ns: int | None = None
    faults: tuple[str, ...] = ()


@dataclass(frozen=True)
class Detection:
    """One detected target in a search-camera image, in that image's pixels.

    ``centre_xy`` is the predicted mean of the box centre and ``centre_cov``
    its 2x2 covariance (px^2), the detector's own uncertainty; the search
    loop turns both into mirror angles through the calibration's Jacobian.
    """

    cls: int
    label: str
    score: float
    box_xyxy: tuple[float, float, float, float]
    centre_xy: tuple[float, float]
    centre_cov: np.ndarray  # (2, 2) px^2
    size_wh: tuple[float, float] = (0.0, 0.0)
    size_var: tuple[float, float] = (0.0, 0.0)  # px^2, variance of width and height
