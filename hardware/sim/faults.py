"""Fault injection on the twin: a schedule of faults the simulated devices act out.

A ``FaultSpec`` names a fault kind, the device it hits, when it starts (clock
seconds from the start of the rig clock) and for how long. ``inject_faults``
hands one ``FaultSchedule`` to the twin's sim cameras and to the simulated
serial controller's port (``galvosim://``), which consult it on every read
and write; the runtime never sees the schedule, only the symptoms, exactly
as on a real rig.

| kind | device | what happens while active | ``value`` |
|---|---|---|---|
| ``camera.stall`` | frame camera | no frames: a read waits until the stall ends or times out | |
| ``camera.late`` | frame camera | every frame is delivered ``value`` s after it was read out | delay s (0.05) |
| ``camera.duplicate`` | frame camera | every read returns the previous frame again (same seq, image, time) | |
| ``camera.disconnect`` | frame camera | reads fail (``DeviceError``) until the camera is closed and opened again, which fails until the window ends | |
| ``events.burst`` | event camera | ``value`` times the events (extra background-activity events spread over the window) | factor (10) |
| ``events.gap`` | event camera | no events from the window (packets still tile time) | |
| ``serial.bit_errors`` | serial galvo | each bit on the wire, both ways, flips with probability ``value`` | BER (1e-4) |
| ``serial.drop_bytes`` | serial galvo | each byte on the wire, both ways, is lost with probability ``value`` | (2e-3) |
| ``serial.reset`` | serial galvo | the controller restarts once at ``t_s`` (``GalvoController.power_cycle``) | |
| ``serial.unplug`` | serial galvo | the cable is out: I/O and opening fail; at the end the controller is plugged back, restarted if ``value`` is 1 (USB-powered) | 0 or 1 |

Rig-file form (``sim.faults``, a list): ``{kind: camera.stall, device: search, t_s: 0.5, duration_s: 0.2}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from foveate.system.errors import ConfigError, DeviceError, DeviceTimeoutError

FAULT_KINDS: dict[str, tuple[str, float | None]] = {
    "camera.stall": ("frame_camera", None),
    "camera.late": ("frame_camera", 0.05),
    "camera.duplicate": ("frame_camera", None),
    "camera.disconnect": ("frame_camera", None),
    "events.burst": ("event_camera", 10.0),
    "events.gap": ("event_camera", None),
    "serial.bit_errors": ("galvo", 1e-4),
    "serial.drop_bytes": ("galvo", 2e-3),
    "serial.reset": ("galvo", None),
    "serial.unplug": ("galvo", 0.0),
}
#: Faults that happen at one instant (no duration).
INSTANT = ("serial.reset",)


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    device: str
    t_s: float
    duration_s: float = 0.0
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind '{self.kind}' (expected one of: {', '.join(FAULT_KINDS)})")
        if not (math.isfinite(self.t_s) and self.t_s >= 0):
            raise ValueError(f"fault {self.kind}: t_s must be >= 0, got {self.t_s}")
        if self.kind not in INSTANT and not self.duration_s > 0:
            raise ValueError(f"fault {self.kind}: duration_s must be > 0, got {self.duration_s}")
        if self.value is None and FAULT_KINDS[self.kind][1] is not None:
            object.__setattr__(self, "value", FAULT_KINDS[self.kind][1])

    @property
    def t0_ns(self) -> int:
        return int(round(self.t_s * 1e9))

    @property
    def t1_ns(self) -> int:
        return self.t0_ns + int(round(self.duration_s * 1e9))

    def covers(self, t_ns: int) -> bool:
        return self.t0_ns <= t_ns < self.t1_ns


class FaultSchedule:
    """The faults of one run; devices ask what is active for them at a clock time."""

    def __init__(self, specs=(), seed: int = 0) -> None:
        self.specs: list[FaultSpec] = [s if isinstance(s, FaultSpec) else FaultSpec(**s) for s in specs]
        self.rng = np.random.default_rng(seed)
        self._fired: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self.specs)

    def active(self, device: str, kind: str, t_ns: int) -> FaultSpec | None:
        for s in self.specs:
            if s.device == device and s.kind == kind and s.covers(t_ns):
                return s
        return None

    def due(self, device: str, kind: str, t_ns: int) -> list[FaultSpec]:
        """Faults of ``kind`` on ``device`` that start at or before ``t_ns`` and have not fired yet (each fires once)."""
        out = []
        for i, s in enumerate(self.specs):
            if s.device == device and s.kind == kind and i not in self._fired and s.t0_ns <= t_ns:
                self._fired.add(i)
                out.append(s)
        return out

    def ended(self, device: str, kind: str, t_ns: int) -> list[FaultSpec]:
        """Windowed faults of ``kind`` whose end has passed, each returned once (e.g. a re-plug)."""
        out = []
        for i, s in enumerate(self.specs):
            key = -1 - i
            if s.device == device and s.kind == kind and key not in self._fired and s.t1_ns <= t_ns:
                self._fired.add(key)
                out.append(s)
        return out


def parse_faults(data, where: str) -> FaultSchedule:
    """``sim.faults`` of a rig file: a list of mappings (``ConfigError`` names the entry)."""
    if data is None:
        return FaultSchedule()
    if not isinstance(data, list):
        raise ConfigError(f"{where}: expected a list of faults, got {type(data).__name__}")
    specs = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}[{i}]: expected a mapping with kind, device, t_s, duration_s, got {item!r}")
        try:
            specs.append(FaultSpec(**item))
        except TypeError as exc:
            raise ConfigError(f"{where}[{i}]: {exc} (keys: kind, device, t_s, duration_s, value)") from None
        except ValueError as exc:
            raise ConfigError(f"{where}[{i}]: {exc}") from None
    return FaultSchedule(specs)


def damage_bytes(data: bytes, schedule: FaultSchedule, devices, t_ns: int) -> tuple[bytes, int, int]:
    """Line noise on ``data`` sent at ``t_ns``: ``(bytes after the wire, bits flipped, bytes lost)``."""
    if not data:
        return data, 0, 0
    ber = next((s.value for d in devices if (s := schedule.active(d, "serial.bit_errors", t_ns))), 0.0)
    p_drop = next((s.value for d in devices if (s := schedule.active(d, "serial.drop_bytes", t_ns))), 0.0)
    if not ber and not p_drop:
        return data, 0, 0
    buf = np.frombuffer(data, np.uint8).copy()
    flipped = 0
    if ber:
        bits = schedule.rng.random((buf.size, 8)) < ber
        flipped = int(bits.sum())
        if flipped:
            buf ^= np.packbits(bits, axis=1, bitorder="little")[:, 0]
    lost = 0
    if p_drop:
        keep = schedule.rng.random(buf.size) >= p_drop
        lost = int(buf.size - keep.sum())
        buf = buf[keep]
    return buf.tobytes(), flipped, lost


# ----------------------------------------------------------------------------- camera symptoms
def camera_open(cam) -> None:
    """A disconnected camera cannot be opened; opening it again after the fault clears its lost state."""
    if cam.twin.faults.active(cam.name, "camera.disconnect", cam.clock.now_ns()):
        raise DeviceError(f"{cam.name}: camera not found (disconnected)")
    cam._fault_lost = False


def camera_read(cam, timeout_s: float, read):
    """``read(timeout_s)`` of a sim frame camera as the schedule's faults change it."""
    faults, clock, name = cam.twin.faults, cam.clock, cam.name
    cam._check_open()
    if getattr(cam, "_fault_lost", False) or faults.active(name, "camera.disconnect", clock.now_ns()):
        cam._fault_lost = True  # the handle is dead until the camera is closed and opened again
        raise DeviceError(f"{name}: camera disconnected")
    stall = faults.active(name, "camera.stall", clock.now_ns())
    if stall is not None:
        wait_ns = stall.t1_ns - clock.now_ns()
        if wait_ns > timeout_s * 1e9:
            clock.sleep_s(timeout_s)
            raise DeviceTimeoutError(f"{name}: no frame within {timeout_s:g} s")
        clock.sleep_ns(wait_ns)  # frames of the stall were never delivered; the next one comes after it
    last = getattr(cam, "_fault_last", None)
    if last is not None and faults.active(name, "camera.duplicate", clock.now_ns()):
        clock.sleep_s(cam.exposure_s + cam.readout_s)
        cam.frames_read += 1
        return last
    frame = read(timeout_s)
    late = faults.active(name, "camera.late", clock.now_ns())
    if late is not None:
        clock.sleep_s(late.value)
    cam._fault_last = frame
    return frame


def event_faults(cam, packet):
    """Gaps (events of the window lost) and bursts (``value`` x the events, extra background activity)."""
    from foveate.system.types import EVENT_DTYPE, EventPacket

    faults = cam.twin.faults
    events = packet.events
    t0_us, t1_us = packet.t_start_us, packet.t_end_us
    changed = False
    for spec in faults.specs:
        if spec.device != cam.name or spec.kind not in ("events.gap", "events.burst"):
            continue
        a, b = max(t0_us, spec.t0_ns // 1000), min(t1_us, spec.t1_ns // 1000)
        if a >= b:
            continue
        changed = True
        inside = (events["t"] >= a) & (events["t"] < b)
        if spec.kind == "events.gap":
            events = events[~inside]
            continue
        n_extra = int(round((spec.value - 1.0) * max(int(inside.sum()), 1)))
        rng = faults.rng
        extra = np.zeros(n_extra, EVENT_DTYPE)
        extra["x"] = rng.integers(0, packet.sensor_size[0], n_extra)
        extra["y"] = rng.integers(0, packet.sensor_size[1], n_extra)
        extra["t"] = np.sort(rng.integers(a, b, n_extra))
        extra["p"] = rng.integers(0, 2, n_extra)
        events = np.concatenate([events, extra])
        events = events[np.argsort(events["t"], kind="stable")]
    if not changed:
        return packet
    cam.events_read += len(events) - len(packet)
    return EventPacket(events, packet.sensor_size, t0_us, t1_us, packet.source)


def inject_faults(rig, specs, seed: int = 0) -> FaultSchedule:
    """Give the rig's simulated devices one schedule (call after ``rig.open()``); returns it."""
    schedule = specs if isinstance(specs, FaultSchedule) else FaultSchedule(specs, seed)
    for spec in schedule.specs:
        if spec.device not in rig.devices:
            raise ConfigError(f"fault {spec.kind}: no device named '{spec.device}' (have: {', '.join(rig.devices)})")
        want = FAULT_KINDS[spec.kind][0]
        kind = rig.devices[spec.device].kind
        if kind != want:
            raise ConfigError(f"fault {spec.kind}: device '{spec.device}' is a {kind}, expected a {want}")
    twin = rig.context.shared.get("sim.twin")
    if twin is not None:
        twin.faults = schedule
    for name, dev in rig.devices.items():
        port = getattr(getattr(dev, "link", None), "port", None)
        if port is not None and hasattr(port, "attach_faults"):
            port.attach_faults(schedule, name)
    return schedule
