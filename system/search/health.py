"""Device faults in the search loop: notice them, keep searching, recover, report.

``HealthMonitor`` sits between the scheduler and the devices. Every device
call of the loop goes through ``call`` (or ``read`` for cameras), which turns
a ``DeviceError`` into a recorded fault instead of a crash, and every frame
and event packet is checked on arrival:

| symptom | detected as | what the loop does |
|---|---|---|
| a read times out | ``stall`` | skip that frame; after ``stall_reconnect_after`` in a row, reconnect |
| a read or command fails (``DeviceError``) | ``disconnect`` / ``link`` | mark the device down, reconnect with back-off |
| the galvo controller restarted or its watchdog parked it (``reset`` / ``watchdog`` fault) | ``reset`` / ``watchdog`` | re-home the galvo (configure, park, settle) before the next move |
| a frame arrives ``late_frame_s`` after its readout | ``late`` | drop late search frames (the mirror has moved on), use late wide frames |
| the same frame again (same seq and time) | ``duplicate`` | drop it |
| an event packet far above the running mean rate | ``burst`` | keep the packet's first events up to the burst limit (drops counted) |
| an empty event packet where many were expected | ``gap`` | keep the last map (no segmentation of nothing) |

While the search galvo or camera is down the loop keeps reading the wide
sources and refreshing the map, and pauses ``idle_s`` per iteration; it
tries to reconnect after ``reconnect_initial_s``, multiplying the wait by
``reconnect_factor`` after each failed attempt up to ``reconnect_max_s``.
A fault is over (its ``t_recover_ns``) at the device's first good read or
command after it. ``summary()`` lists every fault with its detection and
recovery times (clock seconds), frames lost and attempts (the latest 1000;
``count`` counts all); it goes into the
run's ``summary.json`` under ``faults``, and each fault is logged when
detected and when recovered.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field

import numpy as np

from foveate.system.errors import DeviceError, DeviceTimeoutError, LimitError

log = logging.getLogger(__name__)

MAX_RECORDS = 1000  # fault records kept (the latest); ``count`` has them all: memory stays flat on a flaky rig


@dataclass
class FaultRecord:
    device: str
    kind: str
    t_detect_ns: int
    t_recover_ns: int | None = None
    frames_lost: int = 0
    attempts: int = 0
    detail: str = ""

    def as_dict(self, t0_ns: int = 0) -> dict:
        rec = None if self.t_recover_ns is None else round((self.t_recover_ns - t0_ns) * 1e-9, 6)
        return {"device": self.device, "kind": self.kind, "t_detect_s": round((self.t_detect_ns - t0_ns) * 1e-9, 6),
                "t_recover_s": rec, "frames_lost": self.frames_lost, "attempts": self.attempts, "detail": self.detail}


@dataclass
class _Device:
    name: str
    dev: object
    up: bool = True
    fault: FaultRecord | None = None
    timeouts: int = 0
    next_try_ns: int = 0
    wait_s: float = 0.0
    last_seq: tuple | None = None
    rate: float | None = None  # events: running mean rate (events per s)
    packets: int = 0
    counters: dict = field(default_factory=lambda: {"errors": 0, "timeouts": 0, "reconnects": 0, "late": 0,
                                                    "duplicates": 0, "events_dropped": 0, "gaps": 0, "bursts": 0})


class HealthMonitor:
    """See the module docstring. ``settings`` is the rig's ``reliability:`` section."""

    def __init__(self, clock, settings) -> None:
        self.clock = clock
        self.s = settings
        self.devices: dict[int, _Device] = {}
        self.records: collections.deque[FaultRecord] = collections.deque(maxlen=MAX_RECORDS)  # the latest
        self.count = 0
        self.t0_ns = 0  # times are reported on the rig clock (simulated rigs start at 0)

    # ------------------------------------------------------------------ bookkeeping
    def _entry(self, dev) -> _Device:
        e = self.devices.get(id(dev))
        if e is None:
            e = self.devices[id(dev)] = _Device(dev.name, dev)
        return e

    def _open_fault(self, e: _Device, kind: str, detail: str) -> FaultRecord:
        if e.fault is None or e.fault.kind != kind:
            if e.fault is not None:  # one fault turned into another (a stall into a reconnection)
                self._close_fault(e)
            e.fault = FaultRecord(e.name, kind, self.clock.now_ns(), detail=detail)
            self.records.append(e.fault)
            self.count += 1
            log.warning("%s: %s at t=%.3f s: %s", e.name, kind, (e.fault.t_detect_ns - self.t0_ns) * 1e-9, detail)
        return e.fault

    def _close_fault(self, e: _Device) -> None:
        f = e.fault
        if f is None:
            return
        f.t_recover_ns = self.clock.now_ns()
        e.fault = None
        log.warning("%s: recovered from %s after %.3f s (frames lost %d, attempts %d)", e.name, f.kind,
                    (f.t_recover_ns - f.t_detect_ns) * 1e-9, f.frames_lost, f.attempts)

    def _down(self, e: _Device, kind: str, detail: str) -> None:
        rec = self._open_fault(e, kind, detail)
        rec.frames_lost += 1
        if e.up:
            e.up = False
            e.wait_s = self.s.reconnect_initial_s
            # a restarted or watchdog-parked controller answers: re-home at once; anything else waits first
            first_wait = 0.0 if kind in ("reset", "watchdog") else e.wait_s
            e.next_try_ns = self.clock.now_ns() + int(first_wait * 1e9)

    def _good(self, e: _Device) -> None:
        e.timeouts = 0
        if e.fault is not None and e.up:
            self._close_fault(e)

    # ------------------------------------------------------------------ device calls
    def usable(self, *devs) -> bool:
        return all(self._entry(d).up for d in devs if d is not None)

    def call(self, dev, fn, *args, **kwargs):
        """``fn(*args)``; on a device fault: recorded, the device marked down (or re-homed), returns None."""
        e = self._entry(dev)
        if not e.up:
            return None
        try:
            out = fn(*args, **kwargs)
        except LimitError:
            raise  # a refused command is a bug of the caller, not a device fault
        except DeviceError as exc:
            e.counters["errors"] += 1
            self._down(e, _kind(exc, dev), str(exc))
            return None
        self._good(e)
        return True if out is None else out

    def read(self, dev, timeout_s: float | None = None):
        """One frame or event packet from a camera, or None (fault recorded; the loop goes on)."""
        e = self._entry(dev)
        if not e.up:
            return None
        try:
            item = dev.read(timeout_s=timeout_s or self.s.read_timeout_s)
        except DeviceTimeoutError as exc:
            e.counters["timeouts"] += 1
            e.timeouts += 1
            rec = self._open_fault(e, "stall", str(exc))
            rec.frames_lost += 1
            if e.timeouts >= self.s.stall_reconnect_after:
                self._down(e, "stall", str(exc))
                rec.frames_lost -= 1  # counted once
            return None
        except LimitError:
            raise
        except DeviceError as exc:
            e.counters["errors"] += 1
            self._down(e, "disconnect", str(exc))
            return None
        return item

    # ------------------------------------------------------------------ arrivals
    def check_frame(self, dev, frame, drop_late: bool) -> bool:
        """True when ``frame`` is fresh; duplicates (and late frames if ``drop_late``) are counted and refused."""
        e = self._entry(dev)
        key = (frame.seq, frame.t_ns)
        if key == e.last_seq:
            e.counters["duplicates"] += 1
            self._open_fault(e, "duplicate", f"frame seq {frame.seq} delivered again").frames_lost += 1
            return False
        e.last_seq = key
        age_s = (self.clock.now_ns() - frame.t_ns) * 1e-9 - 0.5 * frame.exposure_s
        nominal_s = float(getattr(dev, "readout_s", 0.0))
        if getattr(dev, "view", "search") != "search":  # a free-running camera's latest frame may be a period old
            nominal_s += getattr(dev, "frame_period_ns", 0) * 1e-9
        if age_s - nominal_s > self.s.late_frame_s:
            e.counters["late"] += 1
            rec = self._open_fault(e, "late", f"frame seq {frame.seq} delivered {age_s * 1e3:.1f} ms after exposure")
            if drop_late:
                rec.frames_lost += 1
                return False
            return True
        self._good(e)
        return True

    def check_events(self, dev, packet):
        """The packet to use (a burst is cut to the burst limit), or None for a gap (keep the last map)."""
        e = self._entry(dev)
        dt_s = (packet.t_end_us - packet.t_start_us) * 1e-6
        if dt_s <= 0:
            return packet
        n = len(packet)
        rate = n / dt_s
        e.packets += 1
        if e.rate is not None and e.packets > 3:
            expected = e.rate * dt_s
            if n == 0 and expected >= self.s.event_gap_min_events:
                e.counters["gaps"] += 1
                self._open_fault(e, "gap", f"no events in {dt_s * 1e3:.0f} ms (expected ~{expected:.0f})")
                return None
            if rate > self.s.event_burst_factor * e.rate:
                keep = min(n, int(self.s.event_burst_factor * expected))
                e.counters["bursts"] += 1
                e.counters["events_dropped"] += n - keep
                self._open_fault(e, "burst", f"{n} events in {dt_s * 1e3:.0f} ms, {rate / e.rate:.1f}x the mean rate")
                return _thin(packet, keep)
        e.rate = rate if e.rate is None else 0.8 * e.rate + 0.2 * rate
        self._good(e)
        return packet

    # ------------------------------------------------------------------ recovery
    def recover(self) -> None:
        """Reconnect (and re-home) devices whose back-off has expired."""
        now = self.clock.now_ns()
        for e in self.devices.values():
            if e.up or now < e.next_try_ns:
                continue
            e.fault.attempts += 1
            try:
                _reconnect(e.dev, e.fault.kind)
            except LimitError:
                raise
            except DeviceError as exc:
                e.wait_s = min(e.wait_s * self.s.reconnect_factor, self.s.reconnect_max_s)
                e.next_try_ns = self.clock.now_ns() + int(e.wait_s * 1e9)
                log.info("%s: reconnection attempt %d failed (%s); next in %.3f s", e.name, e.fault.attempts, exc, e.wait_s)
                continue
            e.counters["reconnects"] += 1
            e.up = True
            e.timeouts = 0
            e.last_seq = None

    def idle(self, galvo=None) -> None:
        """Pause ``idle_s`` while the search path is down; keeps an up galvo's controller watchdog fed."""
        if galvo is not None and self._entry(galvo).up:
            self.call(galvo, galvo.position)
        self.clock.sleep_s(self.s.idle_s)

    def next_try_ns(self) -> int | None:
        waits = [e.next_try_ns for e in self.devices.values() if not e.up]
        return min(waits) if waits else None

    # ------------------------------------------------------------------ report
    def summary(self) -> dict:
        devices = {e.name: {"up": e.up, **{k: v for k, v in e.counters.items() if v}} for e in self.devices.values()}
        return {"count": self.count, "open": sum(r.t_recover_ns is None for r in self.records),
                "frames_lost": sum(r.frames_lost for r in self.records),
                "records": [r.as_dict(self.t0_ns) for r in self.records],
                "devices": {k: v for k, v in devices.items() if len(v) > 1 or not v["up"]}}


def _kind(exc: DeviceError, dev) -> str:
    msg = str(exc).lower()
    for word in ("reset", "watchdog"):
        if word in msg:
            return word
    return "link" if getattr(dev, "kind", "") == "galvo" else "disconnect"


def _thin(packet, n: int):
    """``n`` events spread evenly over the packet (time order kept)."""
    from foveate.system.types import EventPacket

    idx = np.linspace(0, len(packet) - 1, max(n, 0)).astype(np.int64)
    return EventPacket(packet.events[idx], packet.sensor_size, packet.t_start_us, packet.t_end_us, packet.source)


def _reconnect(dev, kind: str) -> None:
    """Bring a device back: a galvo re-homes (reconnecting its link if needed), anything else closes and opens."""
    if hasattr(dev, "recover"):
        dev.recover()
        return
    try:
        dev.close()
    except DeviceError:
        pass
    dev.open()
    if getattr(dev, "kind", "") == "galvo":
        dev.park()
        dev.wait_settled(0.05)


__all__ = ["HealthMonitor", "FaultRecord"]
