"""Event camera interface: contiguous half-open packets in the project dtype."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Iterator

from foveate.drivers.device import Device
from foveate.system.clock import Clock
from foveate.system.types import EVENT_DTYPE, EventPacket


class EventCamera(Device):
    """A sensor that streams events.

    ``read()`` returns everything since the previous packet, so consecutive
    packets tile time without gaps or overlap: packet k ends where k+1 starts.
    Backends implement ``_do_read`` returning the next packet.
    """

    kind = "event_camera"

    def __init__(self, name: str, clock: Clock, width: int, height: int) -> None:
        super().__init__(name, clock)
        if width <= 0 or height <= 0:
            raise ValueError(f"{name}: sensor size must be positive, got {width}x{height}")
        self.sensor_size = (int(width), int(height))
        self.events_read = 0
        self.events_dropped = 0
        self._t_cursor_us: int | None = None

    def read(self, timeout_s: float = 1.0) -> EventPacket:
        """Events since the end of the previous packet up to now."""
        self._check_open()
        if not timeout_s > 0:
            raise ValueError(f"{self.name}: timeout_s must be > 0, got {timeout_s}")
        packet = self._do_read(float(timeout_s))
        if packet.events.dtype != EVENT_DTYPE:
            raise TypeError(f"{self.name}: backend returned dtype {packet.events.dtype}")
        if self._t_cursor_us is not None and packet.t_start_us != self._t_cursor_us:
            self.log.warning(
                "gap in event stream: expected start %d us, got %d us", self._t_cursor_us, packet.t_start_us
            )
        self._t_cursor_us = packet.t_end_us
        self.events_read += len(packet)
        return packet

    def __iter__(self) -> Iterator[EventPacket]:
        while self.is_open:
            yield self.read()

    @abstractmethod
    def _do_read(self, timeout_s: float) -> EventPacket: ...

    def _do_status(self) -> dict[str, Any]:
        return {
            "width": self.sensor_size[0],
            "height": self.sensor_size[1],
            "events_read": self.events_read,
            "events_dropped": self.events_dropped,
        }
