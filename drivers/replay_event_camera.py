"""``replay`` event camera: a recorded event file played back on the injected clock.

Rig file::

    event_camera:
      backend: replay
      settings:
        path: recordings/street.raw   # any format open_events reads; relative to the rig file
        speed: 1.0                     # real time x factor; null = as fast as possible
        loop: false

Pacing: with ``speed`` = k, a read at clock time c returns the file's events
up to ``start + k·(c − c_open)``, where ``start`` is ``start_us`` or the first
event. With ``speed: null`` each read returns the next ``packet_us`` of file
time without waiting, so a consumer runs as fast as it can; with a
``ManualClock`` both modes are deterministic. Packets tile file time without
gaps; event times are the file's sensor clock (µs), shifted by one file
duration per loop when ``loop`` is on. After the end (no loop) packets stay
empty and ``status()["finished"]`` is true.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foveate.drivers.device import DeviceSettings
from foveate.drivers.event_camera import EventCamera
from foveate.system.clock import Clock
from foveate.system.context import RigContext
from foveate.system.errors import ConfigError, EventFormatError
from foveate.system.events import TimeCursor, open_events
from foveate.system.events.slicing import DEFAULT_REORDER_US
from foveate.system.types import EVENT_DTYPE, EventPacket


class ReplayEventCameraSettings(DeviceSettings):
    path: str
    format: str | None = None
    speed: float | None = 1.0
    packet_us: int = 10_000
    loop: bool = False
    start_us: int | None = None
    width: int | None = None
    height: int | None = None
    repair: bool = False
    reorder_us: int = DEFAULT_REORDER_US


class ReplayEventCamera(EventCamera):
    """Plays an event file back as a live sensor (see the module docstring)."""

    Settings = ReplayEventCameraSettings

    def __init__(self, name: str, clock: Clock, path: str | Path, format: str | None = None,
                 speed: float | None = 1.0, packet_us: int = 10_000, loop: bool = False,
                 start_us: int | None = None, width: int | None = None, height: int | None = None,
                 repair: bool = False, reorder_us: int = DEFAULT_REORDER_US) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"{name}: speed must be > 0 (or None for as fast as possible), got {speed}")
        if packet_us <= 0:
            raise ValueError(f"{name}: packet_us must be > 0, got {packet_us}")
        if (width is None) != (height is None):
            raise ValueError(f"{name}: give both width and height, or neither")
        self.path = Path(path)
        self.format = format
        self._size_arg = None if width is None else (int(width), int(height))
        self._repair = bool(repair)
        self.reorder_us = int(reorder_us)
        with self._open_reader() as r:
            size = r.sensor_size
            self.format = r.format
        super().__init__(name, clock, size[0], size[1])
        self.speed = None if speed is None else float(speed)
        self.packet_us = int(packet_us)
        self.loop = bool(loop)
        self.start_us = start_us
        self._reader = None

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "ReplayEventCamera":
        kw = settings.model_dump()
        kw["path"] = context.resolve(kw["path"])
        try:
            return cls(name=name, clock=context.clock, **kw)
        except EventFormatError as exc:
            raise ConfigError(f"{context.source}: device '{name}': {exc}") from None

    def _open_reader(self):
        return open_events(self.path, self.format, sensor_size=self._size_arg, repair=self._repair)

    # -- lifecycle ------------------------------------------------------------
    def _do_open(self) -> None:
        self._reader = self._open_reader()
        self._cursor = TimeCursor(self._reader, self.reorder_us)
        first = self._cursor.first_t()
        self._file_start = int(self.start_us if self.start_us is not None else (first if first is not None else 0))
        if self.start_us is not None:
            self._cursor.skip_until(self._file_start)
        self._pos_us = self._file_start
        self._loop_offset = 0
        self._last_t: int | None = None
        self._finished = False
        self._loops = 0
        self._c0_ns = self.clock.now_ns()

    def _do_close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    # -- reading ----------------------------------------------------------------
    def _target_us(self) -> int:
        if self.speed is None:
            return self._pos_us + self.packet_us
        elapsed_us = (self.clock.now_ns() - self._c0_ns) / 1000.0 * self.speed
        return max(self._pos_us, self._file_start + int(elapsed_us))

    def _take(self, t_end: int) -> np.ndarray:
        """Events of the (looped) stream with t < t_end."""
        parts = []
        while True:
            ev = self._cursor.take_until(t_end - self._loop_offset)
            if len(ev):
                self._last_t = int(ev["t"][-1])
                if self._loop_offset:
                    ev = ev.copy()
                    ev["t"] += self._loop_offset
                parts.append(ev)
            if self._cursor.first_t() is not None or not self.loop or self._last_t is None:
                break
            # end of file: start the next pass one file duration later
            period = self._last_t + 1 - self._file_start
            self._reader.close()
            self._reader = self._open_reader()
            self._cursor = TimeCursor(self._reader, self.reorder_us)
            self._cursor.skip_until(self._file_start)
            self._loop_offset += period
            self._loops += 1
            if self._file_start + self._loop_offset >= t_end:
                break
        if self._cursor.first_t() is None and not self.loop:
            self._finished = True
        if not parts:
            return np.zeros(0, EVENT_DTYPE)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _do_read(self, timeout_s: float) -> EventPacket:
        t0 = self._pos_us
        t1 = self._target_us()
        ev = self._take(t1) if t1 > t0 else np.zeros(0, EVENT_DTYPE)
        self._pos_us = t1
        return EventPacket(ev, self.sensor_size, t0, t1, self.name)

    def _do_status(self) -> dict[str, Any]:
        st = super()._do_status()
        st.update({
            "path": str(self.path),
            "format": self.format,
            "speed": self.speed,
            "position_us": self._pos_us,
            "loops": self._loops,
            "finished": self._finished,
        })
        return st
