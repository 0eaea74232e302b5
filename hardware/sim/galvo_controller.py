"""The controller side of the galvo serial protocol, simulated faithfully.

``GalvoController`` is what firmware on the microcontroller does
(``hardware/protocol/galvo_serial.md``): it parses frames, refuses what is
out of range, ramps the setpoint under a slew limit at a 100 kHz servo rate,
drives two mirror axes (``SecondOrderAxis`` from the twin's dynamics model),
fires a trigger pulse after settling, keeps a watchdog that parks the mirror
and switches the aux outputs off when the host goes silent, and stamps
replies with its own wrapping µs counter (with configurable offset and drift,
so clock synchronisation has something real to estimate).

Time is explicit: every call passes the true time ``t_ns`` (the rig's clock
for ``galvosim://``, the monotonic clock for the pseudo-terminal server), and
the controller processes what happened up to then in time order (ramp steps,
watchdog expiry, trigger pulses) before it handles new bytes. Nothing here
sleeps or reads a clock.

Fault injection (for tests): ``inject_reply_fault`` and
``inject_request_fault`` queue one-shot corruptions; ``mute`` stops replies;
``power_cycle`` restarts the controller mid-run (power-on state, ``RESET``
latched). Line noise, lost bytes and unplugging happen on the wire
(``protocol_galvosim``).

Safety envelope (``SafetyEnvelope``, set by whoever owns the rig, not by the
host): the controller logs in ``violations`` every SET_POSITION outside the
envelope's angle limits, every executed move faster than its slew limit,
and every moment the laser (an aux output) is on while the mirror is aimed
outside the keep-in zone. Tests and ``foveate bench faults`` check that the
log stays empty. ``history`` keeps the executed commands (not status reads),
so a test can see, e.g., a re-home after a restart.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from foveate.drivers.galvo_protocol import (
    LATCHING_FAULTS,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    REPLY_BIT,
    REQUEST_SIZES,
    SET_AUX,
    SET_LIMITS,
    SET_PARK,
    SET_POSITION,
    SET_SLEW,
    SET_TRIGGER,
    SET_WATCHDOG,
    SYNC,
    Command,
    ControllerStatus,
    ErrorCode,
    Fault,
    FrameDecoder,
    Identity,
    MoveFlag,
    StatusFlag,
    TriggerMode,
    encode_frame,
    full_scale,
    pack_ack,
    pack_error,
)
from foveate.hardware.sim.galvo_dynamics import SecondOrderAxis

ReplyFaultKind = Literal["drop", "truncate", "corrupt_crc", "garbage", "wrong_seq"]
RequestFaultKind = Literal["drop_bytes", "corrupt"]

#: Bytes the simulated controller puts before a reply for the "garbage" fault:
#: noise, then a false sync marker with a plausible length, then more noise.
GARBAGE = b"\x00\x13" + SYNC + b"\x02\x07" + b"\xff\xa5"

INF = math.inf


@dataclass
class TriggerPulse:
    t_ns: int  # true time of the rising edge
    device_us: int  # the controller's timestamp of it (wrapped to 32 bits)
    count: int


@dataclass
class ControllerCounters:
    frames: int = 0
    duplicates: int = 0
    crc_errors: int = 0
    garbage_bytes: int = 0
    partial_timeouts: int = 0
    errors_sent: int = 0


@dataclass(frozen=True)
class SafetyEnvelope:
    """What the mirror and the laser may do, in controller degrees (``scale.to_deg`` of the codes)."""

    limits_deg: tuple[tuple[float, float], tuple[float, float]] = ((-20.0, 20.0), (-20.0, 20.0))
    max_slew_deg_s: float | None = None  # None: any speed
    laser_keep_in_deg: tuple[tuple[float, float], tuple[float, float]] | None = None  # None: laser anywhere
    laser_aux: int = 0

    @staticmethod
    def inside(box, x_deg: float, y_deg: float, tol_deg: float = 0.0) -> bool:
        (x0, x1), (y0, y1) = box
        return x0 - tol_deg <= x_deg <= x1 + tol_deg and y0 - tol_deg <= y_deg <= y1 + tol_deg


@dataclass(frozen=True)
class Violation:
    t_ns: int
    kind: str  # angle | slew | laser
    detail: str


@dataclass
class _Trigger:
    window_codes: int = 4
    delay_us: int = 0
    pulse_us: int = 10
    mode: TriggerMode = TriggerMode.OFF


@dataclass
class ControllerConfig:
    """Physical truth of the simulated controller and mirror (what a real rig would calibrate)."""

    dac_bits: int = 16
    full_scale_deg: float = 20.0  # code 0 = -full_scale_deg, top code = +full_scale_deg
    natural_freq_hz: float = 1800.0
    damping: float = 0.7
    noise_deg: float = 0.00086  # position sensor noise, ~15 µrad RMS
    seed: int = 0
    clock_offset_us: int = 0  # controller counter at true time 0
    clock_drift_ppm: float = 0.0  # controller oscillator error
    n_aux: int = 1
    servo_period_us: int = 10  # setpoint ramp update (100 kHz, like XY2-100)
    frame_timeout_ms: float = 5.0  # a partial frame older than this is discarded
    turnaround_us: float = 20.0  # processing time before a reply starts (galvosim:// models it)
    firmware: tuple[int, int] = (1, 0)
    model: str = "foveate galvosim"
    extra: dict = field(default_factory=dict)


class GalvoController:
    """One simulated two-axis galvo controller; thread-safe (the pty server calls it from its own thread)."""

    def __init__(self, config: ControllerConfig | None = None, start_ns: int = 0) -> None:
        self.config = cfg = config or ControllerConfig()
        self.scale = full_scale(cfg.dac_bits, cfg.full_scale_deg)
        self.max_code = self.scale.max_code
        mid = self.scale.to_code(0.0)
        self.axes = [SecondOrderAxis(cfg.natural_freq_hz, cfg.damping, 0.0) for _ in range(2)]
        self.limits = [(0, self.max_code), (0, self.max_code)]
        self.park_codes = (mid, mid)
        self.target = [mid, mid]  # final commanded code per axis
        self.setpoint = [float(mid), float(mid)]  # ramped setpoint (codes)
        self.slew_codes_per_ms = [0, 0]  # 0 = unlimited
        self.trigger = _Trigger()
        self.watchdog_ms = 0
        self.faults = Fault(0)
        self.aux: list[tuple[bool, int]] = [(False, 0)] * cfg.n_aux
        self.trigger_pulses: list[TriggerPulse] = []
        self.on_trigger: list[Callable[[TriggerPulse], None]] = []
        self.counters = ControllerCounters()
        self.mute = False
        self.envelope: SafetyEnvelope | None = None
        self.violations: list[Violation] = []
        self.history: deque[tuple[int, str]] = deque(maxlen=4096)  # (t_ns, command) executed, status reads excluded
        self.resets: list[int] = []  # true times of power cycles
        self._reply_faults: deque[ReplyFaultKind] = deque()
        self._request_faults: deque[RequestFaultKind] = deque()
        self._decoder = FrameDecoder()
        self._rng = np.random.default_rng(cfg.seed)
        self._lock = threading.RLock()
        self._t_ns = int(start_ns)
        self._last_rx_ns = int(start_ns)
        self._last_byte_ns = int(start_ns)
        self._ramp_next_ns = INF  # next servo update while ramping
        self._move_ns = int(start_ns)
        self._trigger_pending = False
        self._last_request: tuple[int, int, bytes] | None = None
        self._last_reply = b""
        self._ident = Identity(PROTOCOL_VERSION, cfg.firmware, 2, cfg.dac_bits, cfg.n_aux, MAX_PAYLOAD,
                               int(round(cfg.turnaround_us)), 0, cfg.model)

    # ------------------------------------------------------------------ clocks
    def device_us(self, t_ns: float) -> int:
        """The controller's free-running µs counter at true time ``t_ns``, wrapped to 32 bits."""
        c = self.config
        return int(math.floor(c.clock_offset_us + t_ns * (1.0 + c.clock_drift_ppm * 1e-6) / 1000.0)) & 0xFFFFFFFF

    @property
    def t_ns(self) -> int:
        return self._t_ns

    # ------------------------------------------------------------------ physics
    def _deg(self, code: float) -> float:
        return self.scale.to_deg(code)

    def mirror_deg(self, t_ns: int | None = None) -> tuple[float, float]:
        """True (noise-free) mechanical angles; advances the controller to ``t_ns`` first."""
        with self._lock:
            if t_ns is not None:
                self.advance(t_ns)
            t_s = self._t_ns * 1e-9
            return self.axes[0].state(t_s)[0], self.axes[1].state(t_s)[0]

    def _window_deg(self) -> float:
        return self.trigger.window_codes * self.scale.deg_per_code

    def _ramping(self) -> bool:
        return self._ramp_next_ns != INF

    def _settle_ns(self) -> float:
        """True time from which both axes stay inside the in-position window (INF while ramping)."""
        if self._ramping():
            return INF
        tol = self._window_deg()
        return max(ax.settle_time_s(tol) for ax in self.axes) * 1e9

    def in_position(self) -> bool:
        return self._settle_ns() <= self._t_ns

    def _start_move(self, codes: tuple[int, int], t_ns: int, fire: bool) -> None:
        self.target = [int(codes[0]), int(codes[1])]
        self._move_ns = t_ns
        if any(self.slew_codes_per_ms):
            self._ramp_next_ns = t_ns
            self._ramp_step(t_ns)
        else:
            self.setpoint = [float(c) for c in self.target]
            for ax, c in zip(self.axes, self.target):
                ax.command(self._deg(c), t_ns * 1e-9)
            self._ramp_next_ns = INF
        mode = self.trigger.mode
        self._trigger_pending = mode == TriggerMode.EVERY or (mode == TriggerMode.FLAGGED and fire)

    def _ramp_step(self, t_ns: float) -> None:
        period_ms = self.config.servo_period_us / 1000.0
        done = True
        for i, ax in enumerate(self.axes):
            slew = self.slew_codes_per_ms[i]
            err = self.target[i] - self.setpoint[i]
            step = err if slew == 0 else math.copysign(min(abs(err), slew * period_ms), err)
            if step:
                self.setpoint[i] += step
                ax.command(self._deg(self.setpoint[i]), t_ns * 1e-9)
            if self.setpoint[i] != self.target[i]:
                done = False
        self._ramp_next_ns = INF if done else t_ns + self.config.servo_period_us * 1000

    def _watchdog_deadline_ns(self) -> float:
        if self.watchdog_ms == 0 or self.faults & Fault.WATCHDOG:
            return INF
        return self._last_rx_ns + self.watchdog_ms * 1_000_000

    def _trigger_due_ns(self) -> float:
        if not self._trigger_pending:
            return INF
        settle = self._settle_ns()
        return max(settle, self._move_ns) + self.trigger.delay_us * 1000 if settle != INF else INF

    def advance(self, t_ns: int) -> None:
        """Process ramp steps, watchdog expiry and trigger pulses in time order up to ``t_ns``."""
        with self._lock:
            while True:
                t_ramp, t_wd, t_trig = self._ramp_next_ns, self._watchdog_deadline_ns(), self._trigger_due_ns()
                t_ev = min(t_ramp, t_wd, t_trig)
                if t_ev == INF or t_ev > t_ns:
                    break
                if t_ev == t_wd:
                    self._trip_watchdog(int(t_wd))
                elif t_ev == t_ramp:
                    self._ramp_step(t_ramp)
                else:
                    self._fire_trigger(t_trig)
            self._t_ns = max(self._t_ns, int(t_ns))

    def _trip_watchdog(self, t_ns: int) -> None:
        self.faults |= Fault.WATCHDOG
        self.aux = [(False, level) for _, level in self.aux]
        self._start_move(self.park_codes, t_ns, fire=False)
        self._trigger_pending = False

    def _fire_trigger(self, t_ns: float) -> None:
        self._trigger_pending = False
        pulse = TriggerPulse(int(math.ceil(t_ns)), self.device_us(t_ns), len(self.trigger_pulses) + 1)
        self.trigger_pulses.append(pulse)
        for cb in self.on_trigger:
            cb(pulse)

    def _measured_codes(self) -> tuple[int, int]:
        t_s = self._t_ns * 1e-9
        out = []
        for ax in self.axes:
            deg = ax.state(t_s)[0]
            if self.config.noise_deg > 0:
                deg += float(self._rng.normal(0.0, self.config.noise_deg))
            code = round(self.scale.offset_codes + self.scale.gain_codes_per_deg * deg)
            out.append(int(min(max(code, 0), self.max_code)))  # a sensor reading saturates
        return out[0], out[1]

    def status(self) -> ControllerStatus:
        flags = StatusFlag(0)
        if self.in_position():
            flags |= StatusFlag.IN_POSITION
        if self._ramping():
            flags |= StatusFlag.RAMPING
        if self._trigger_pending:
            flags |= StatusFlag.TRIGGER_PENDING
        if self.watchdog_ms:
            flags |= StatusFlag.WATCHDOG_ARMED
        if self.aux and self.aux[0][0]:
            flags |= StatusFlag.AUX0_ON
        if tuple(self.target) == tuple(self.park_codes):
            flags |= StatusFlag.PARKED
        last = self.trigger_pulses[-1] if self.trigger_pulses else None
        return ControllerStatus(
            timestamp_us=self.device_us(self._t_ns),
            flags=flags,
            faults=self.faults,
            measured_codes=self._measured_codes(),
            commanded_codes=(self.target[0], self.target[1]),
            trigger_count=len(self.trigger_pulses) & 0xFFFFFFFF,
            trigger_timestamp_us=last.device_us if last else 0,
        )

    # ------------------------------------------------------------------ safety envelope
    def _violate(self, t_ns: int, kind: str, detail: str) -> None:
        self.violations.append(Violation(int(t_ns), kind, detail))

    def _check_angle(self, x: int, y: int, t_ns: int) -> None:
        env = self.envelope
        if env is None:
            return
        xd, yd = self._deg(x), self._deg(y)
        if not env.inside(env.limits_deg, xd, yd, 0.5 * self.scale.deg_per_code):
            self._violate(t_ns, "angle", f"SET_POSITION ({xd:.4f}, {yd:.4f}) deg outside {env.limits_deg}")

    def _check_slew(self, codes: tuple[int, int], t_ns: int) -> None:
        """A move executed faster than the envelope's slew limit (the ramp is off or set too fast)."""
        env = self.envelope
        if env is None or env.max_slew_deg_s is None:
            return
        period_ms = self.config.servo_period_us / 1000.0
        limit_codes_per_ms = env.max_slew_deg_s / 1000.0 / self.scale.deg_per_code
        for axis in range(2):
            step = abs(codes[axis] - self.setpoint[axis])
            slew = self.slew_codes_per_ms[axis]
            rate = step / period_ms if slew == 0 else min(slew, step / period_ms)
            if step > 1 and rate > limit_codes_per_ms + 1.0:  # 1 code/ms: the host rounds its slew to codes
                self._violate(t_ns, "slew", f"axis {'xy'[axis]}: setpoint moves at "
                              f"{rate * self.scale.deg_per_code * 1000:.0f} deg/s > {env.max_slew_deg_s:g} deg/s")
                return

    def _laser_on(self) -> bool:
        env = self.envelope
        k = env.laser_aux if env is not None else 0
        return k < len(self.aux) and self.aux[k][0]

    def _check_laser(self, t_ns: int, what: str) -> None:
        env = self.envelope
        if env is None or env.laser_keep_in_deg is None or not self._laser_on():
            return
        tol = 0.5 * self.scale.deg_per_code
        for label, codes in (("target", self.target), ("setpoint", self.setpoint)):
            xd, yd = self._deg(codes[0]), self._deg(codes[1])
            if not env.inside(env.laser_keep_in_deg, xd, yd, tol):
                self._violate(t_ns, "laser", f"{what}: laser on with the mirror {label} at ({xd:.4f}, {yd:.4f}) deg "
                              f"outside the keep-in zone {env.laser_keep_in_deg}")
                return

    def power_cycle(self, t_ns: int) -> None:
        """Restart now: power-on configuration, mirror to mid-scale, aux off, ``RESET`` latched (see the protocol)."""
        with self._lock:
            self.advance(t_ns)
            cfg = self.config
            mid = self.scale.to_code(0.0)
            self.limits = [(0, self.max_code), (0, self.max_code)]
            self.park_codes = (mid, mid)
            self.slew_codes_per_ms = [0, 0]
            self.trigger = _Trigger()
            self.watchdog_ms = 0
            self.aux = [(False, 0)] * cfg.n_aux
            self._trigger_pending = False
            self._decoder = FrameDecoder()
            self._last_request, self._last_reply = None, b""
            self._ramp_next_ns = INF
            # The servo loses its drive and re-centres the mirror: not a commanded move, not checked.
            self.target = [mid, mid]
            self.setpoint = [float(mid), float(mid)]
            for ax in self.axes:
                ax.command(self._deg(mid), t_ns * 1e-9)
            self._move_ns = int(t_ns)
            self._last_rx_ns = int(t_ns)
            self.faults = Fault.RESET
            self.resets.append(int(t_ns))
            self.history.append((int(t_ns), "<power cycle>"))

    # ------------------------------------------------------------------ fault injection
    def inject_reply_fault(self, kind: ReplyFaultKind, count: int = 1) -> None:
        """Corrupt the next ``count`` replies: drop, truncate (lose bytes), corrupt_crc, garbage, wrong_seq."""
        if kind not in ("drop", "truncate", "corrupt_crc", "garbage", "wrong_seq"):
            raise ValueError(f"unknown reply fault {kind!r}")
        self._reply_faults.extend([kind] * count)

    def inject_request_fault(self, kind: RequestFaultKind, count: int = 1) -> None:
        """Damage the next ``count`` incoming chunks: drop_bytes (lose two bytes mid-frame) or corrupt (flip a bit)."""
        if kind not in ("drop_bytes", "corrupt"):
            raise ValueError(f"unknown request fault {kind!r}")
        self._request_faults.extend([kind] * count)

    def _damage_request(self, data: bytes) -> bytes:
        if not self._request_faults or not data:
            return data
        kind = self._request_faults.popleft()
        mid = len(data) // 2
        if kind == "drop_bytes":
            return data[:mid] + data[mid + 2 :]
        b = bytearray(data)
        b[mid] ^= 0x04
        return bytes(b)

    def _damage_reply(self, seq: int, cmd: int, payload: bytes, frame: bytes) -> bytes:
        if self.mute:
            return b""
        if not self._reply_faults:
            return frame
        kind = self._reply_faults.popleft()
        if kind == "drop":
            return b""
        if kind == "truncate":
            return frame[:-3]
        if kind == "corrupt_crc":
            return frame[:-1] + bytes([frame[-1] ^ 0xFF])
        if kind == "garbage":
            return GARBAGE + frame
        return encode_frame((seq + 1) & 0xFF, cmd, payload)  # wrong_seq

    # ------------------------------------------------------------------ bytes in, bytes out
    def receive(self, data: bytes, t_ns: int) -> bytes:
        """Bytes from the host arriving complete at true time ``t_ns``; returns the reply bytes."""
        with self._lock:
            self.advance(t_ns)
            dec = self._decoder
            if dec.pending and t_ns - self._last_byte_ns > self.config.frame_timeout_ms * 1e6:
                dec.reset()
                self.counters.partial_timeouts += 1
                self.faults |= Fault.RX_ERROR
            self._last_byte_ns = t_ns
            crc0, garbage0 = dec.crc_errors, dec.garbage_bytes
            frames = dec.feed(self._damage_request(data))
            self.counters.crc_errors += dec.crc_errors - crc0
            self.counters.garbage_bytes += dec.garbage_bytes - garbage0
            if dec.crc_errors != crc0:
                self.faults |= Fault.RX_ERROR
            out = bytearray()
            for f in frames:
                if f.is_reply:
                    continue  # our own kind of frame echoed back: not a request
                self.counters.frames += 1
                self._last_rx_ns = t_ns  # any valid frame feeds the watchdog
                key = (f.seq, f.cmd, f.payload)
                if key == self._last_request:
                    self.counters.duplicates += 1
                    reply = self._last_reply  # a retransmission: same answer, not executed twice
                    payload = reply[5:-2]
                else:
                    payload = self._execute(f.cmd, f.payload, t_ns)
                    reply = encode_frame(f.seq, f.cmd | REPLY_BIT, payload)
                    self._last_request, self._last_reply = key, reply
                if payload and payload[0] != ErrorCode.OK:
                    self.counters.errors_sent += 1
                out += self._damage_reply(f.seq, f.cmd | REPLY_BIT, payload, reply)
            return bytes(out)

    def _execute(self, cmd: int, p: bytes, t_ns: int) -> bytes:
        try:
            command = Command(cmd)
        except ValueError:
            return pack_error(ErrorCode.UNKNOWN_COMMAND)
        if len(p) != REQUEST_SIZES[command]:
            return pack_error(ErrorCode.BAD_LENGTH)
        ts = self.device_us(t_ns)
        ack = pack_ack(ts)
        if command == Command.READ_STATUS:
            return self.status().pack()
        self.history.append((t_ns, command.name))
        if command == Command.IDENTIFY:
            return Identity(**{**self._ident.__dict__, "timestamp_us": ts}).pack()
        if command == Command.SET_POSITION:
            x, y, flags = SET_POSITION.unpack(p)
            self._check_angle(x, y, t_ns)
            if self.faults & LATCHING_FAULTS:
                return pack_error(ErrorCode.FAULT_LATCHED)
            for axis, code in enumerate((x, y)):
                lo, hi = self.limits[axis]
                if not lo <= code <= hi:
                    return pack_error(ErrorCode.OUT_OF_RANGE, axis)
            self._check_slew((x, y), t_ns)
            self._start_move((x, y), t_ns, bool(flags & MoveFlag.TRIGGER))
            self._check_laser(t_ns, "move")
            return ack
        if command == Command.PARK:
            self._start_move(self.park_codes, t_ns, fire=False)
            return ack
        if command == Command.SET_LIMITS:
            x0, x1, y0, y1 = SET_LIMITS.unpack(p)
            for axis, (lo, hi) in enumerate(((x0, x1), (y0, y1))):
                if not lo < hi:
                    return pack_error(ErrorCode.BAD_ARGUMENT, axis)
                if hi > self.max_code:
                    return pack_error(ErrorCode.OUT_OF_RANGE, axis)
                if not lo <= self.park_codes[axis] <= hi:
                    return pack_error(ErrorCode.BAD_ARGUMENT, axis)  # would strand the park position
            self.limits = [(x0, x1), (y0, y1)]
            return ack
        if command == Command.SET_PARK:
            x, y = SET_PARK.unpack(p)
            for axis, code in enumerate((x, y)):
                lo, hi = self.limits[axis]
                if not lo <= code <= hi:
                    return pack_error(ErrorCode.OUT_OF_RANGE, axis)
            self.park_codes = (x, y)
            return ack
        if command == Command.SET_SLEW:
            self.slew_codes_per_ms = list(SET_SLEW.unpack(p))
            return ack
        if command == Command.SET_WATCHDOG:
            (self.watchdog_ms,) = SET_WATCHDOG.unpack(p)
            return ack
        if command == Command.SET_TRIGGER:
            window, delay, pulse, mode = SET_TRIGGER.unpack(p)
            if window == 0:
                return pack_error(ErrorCode.BAD_ARGUMENT, 0)
            try:
                mode = TriggerMode(mode)
            except ValueError:
                return pack_error(ErrorCode.BAD_ARGUMENT)
            self.trigger = _Trigger(window, delay, pulse, mode)
            return ack
        if command == Command.SET_AUX:
            index, on, level = SET_AUX.unpack(p)
            if index >= len(self.aux) or on > 1:
                return pack_error(ErrorCode.BAD_ARGUMENT)
            if on and self.faults & LATCHING_FAULTS:
                return pack_error(ErrorCode.FAULT_LATCHED)
            self.aux[index] = (bool(on), level)
            self._check_laser(t_ns, "laser on")
            return ack
        if command == Command.CLEAR_FAULTS:
            self.faults = Fault(0)
            return ack
        return pack_error(ErrorCode.UNKNOWN_COMMAND)  # pragma: no cover - every Command is handled above


def config_from_options(options: dict[str, str]) -> ControllerConfig:
    """A ``ControllerConfig`` from URL query options (strings); ``ValueError`` names an unknown or bad key."""
    fields = {f for f in ControllerConfig.__dataclass_fields__ if f not in ("extra", "firmware", "model")}
    kwargs: dict = {}
    for key, value in options.items():
        if key not in fields:
            raise ValueError(f"unknown option '{key}' (expected one of: {', '.join(sorted(fields))})")
        default = getattr(ControllerConfig, key)
        try:
            kwargs[key] = type(default)(float(value)) if isinstance(default, int) else type(default)(value)
        except ValueError:
            raise ValueError(f"option '{key}': expected a number, got {value!r}") from None
    return ControllerConfig(**kwargs)
