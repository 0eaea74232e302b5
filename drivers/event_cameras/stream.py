"""Device-stamped event batches → contiguous host-clock ``EventPacket``s (shared by the live backends).

A live event camera stamps events on its own µs clock (Unix time for
iniVation cameras, time since start for Prophesee ones) and delivers them in
batches some time later. ``DeviceEventStream``:

* feeds a ``ClockSync`` in arrival mode with (last event of a batch, arrival
  time) and maps every event to the host clock, minus the constant transfer
  ``latency_s`` (see ``foveate.system.timesync`` for why that constant must
  be given);
* hands out packets that tile host time: packet k is ``[t_k, t_{k+1})``
  with ``t_{k+1} = now - margin_s``; events not yet due stay held for the
  next packet, so a packet's end is a promise that nothing earlier is still
  in flight. An event that arrives later than the margin allowed is put at
  the packet start and counted in ``late_events`` (raise ``margin_s`` if it
  grows);
* keeps external-trigger times (rising edges) and maps them to the host
  clock on request with the latest fit, for hardware-trigger alignment
  (``foveate.system.timesync.match_triggers``).
"""

from __future__ import annotations

import numpy as np

from foveate.system.clock import Clock
from foveate.system.timesync import ClockSync
from foveate.system.types import EVENT_DTYPE, EventPacket


class DeviceEventStream:
    def __init__(self, clock: Clock, sensor_size: tuple[int, int], source: str, latency_s: float = 0.0,
                 margin_s: float = 0.002) -> None:
        self.clock = clock
        self.sensor_size = sensor_size
        self.source = source
        self.latency_ns = int(latency_s * 1e9)
        self.margin_us = int(margin_s * 1e6)
        self.sync = ClockSync("arrival")
        self._held = np.zeros(0, EVENT_DTYPE)
        self._cursor_us: int | None = None
        self.late_events = 0
        self.out_of_sensor = 0
        self.trigger_device_us: list[int] = []

    def start(self) -> None:
        self._cursor_us = self.clock.now_us()

    def _to_host_us(self, t_device_us: np.ndarray) -> np.ndarray:
        host_ns = self.sync.to_host_ns(t_device_us.astype(np.float64) * 1000.0)
        return np.floor((np.asarray(host_ns) - self.latency_ns) / 1000.0).astype(np.int64)

    def add_batch(self, x, y, t_device_us, p, arrival_ns: int | None = None) -> None:
        """Events of one batch (any integer/bool dtypes); ``arrival_ns`` defaults to now."""
        t_device_us = np.asarray(t_device_us, dtype=np.int64)
        if t_device_us.size == 0:
            return
        arrival_ns = self.clock.now_ns() if arrival_ns is None else int(arrival_ns)
        self.sync.add(int(t_device_us.max()) * 1000, arrival_ns)
        x, y = np.asarray(x), np.asarray(y)
        w, h = self.sensor_size
        ok = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        if not ok.all():
            self.out_of_sensor += int((~ok).sum())
        ev = np.empty(int(ok.sum()), EVENT_DTYPE)
        ev["x"], ev["y"] = x[ok], y[ok]
        ev["t"] = self._to_host_us(t_device_us[ok])
        ev["p"] = (np.asarray(p)[ok] > 0).astype(np.uint8)
        held = np.concatenate([self._held, ev])
        self._held = held[np.argsort(held["t"], kind="stable")]

    def add_triggers(self, t_device_us, rising=None) -> None:
        """External-trigger edges (device µs); only rising edges are kept when ``rising`` is given."""
        t = np.asarray(t_device_us, dtype=np.int64)
        if rising is not None:
            t = t[np.asarray(rising).astype(bool)]
        self.trigger_device_us += [int(v) for v in t]

    def trigger_times_ns(self) -> list[int]:
        """External-trigger rising edges on the host clock, mapped with the current (latest) clock fit."""
        if not self.trigger_device_us or not self.sync.n_samples:
            return []
        self.sync.refit()
        return [int(v) * 1000 for v in self._to_host_us(np.array(self.trigger_device_us, dtype=np.int64))]

    def packet(self) -> EventPacket:
        """Everything since the previous packet up to ``now - margin``."""
        t0 = self._cursor_us
        t1 = max(t0, self.clock.now_us() - self.margin_us)
        held = self._held
        late = held["t"] < t0
        if late.any():
            self.late_events += int(late.sum())
            held["t"][late] = t0
        n = int(np.searchsorted(held["t"], t1, side="left"))
        out, self._held = held[:n].copy(), held[n:]
        self._cursor_us = t1
        return EventPacket(out, self.sensor_size, t0, t1, self.source)
