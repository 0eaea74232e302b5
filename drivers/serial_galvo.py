"""Galvo backend ``serial``: a two-axis controller speaking ``hardware/protocol/galvo_serial.md``.

The transport is any pyserial URL, opened with ``serial.serial_for_url``:
``/dev/ttyACM0``, ``rfc2217://host:port``, ``spy:///dev/ttyACM0`` (hex dump
of the traffic), ``loop://`` or the simulated controller ``galvosim://``.

Per transaction (``GalvoLink.transact``): take the lock, flush stale input,
write the frame, read the reply until it is complete or the timeout passes,
and retry (same sequence number, so the controller answers a retransmission
from its cache instead of executing it twice) on a timeout, a CRC error or
a reply with the wrong sequence number; after ``retries`` retries raise
``DeviceTimeoutError`` naming the port, the command and what went wrong.

Limits are enforced twice: the host refuses with ``LimitError`` before
sending, and the controller refuses (``OUT_OF_RANGE``) whatever the host let
through; neither clips. Angles become DAC codes through per-axis
``gain_codes_per_deg``/``offset_codes`` from the rig file.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Literal

import numpy as np
import serial
from pydantic import BaseModel, ConfigDict, Field, model_validator

from foveate.drivers.device import DeviceSettings
from foveate.drivers.galvo import Galvo
from foveate.drivers.galvo_protocol import (
    LATCHING_FAULTS,
    MAX_PAYLOAD,
    OVERHEAD,
    PROTOCOL_VERSION,
    REPLY_BIT,
    SET_LIMITS,
    SET_PARK,
    SET_POSITION,
    SET_SLEW,
    SET_TRIGGER,
    SET_WATCHDOG,
    AxisScale,
    Command,
    ControllerError,
    ControllerStatus,
    ErrorCode,
    FrameDecoder,
    Identity,
    MoveFlag,
    StatusFlag,
    TriggerMode,
    encode_frame,
    fault_names,
    reply_error,
    unpack_ack,
    unwrap_u32,
)
from foveate.system.clock import Clock
from foveate.system.context import RigContext
from foveate.system.errors import ConfigError, DeviceError, DeviceTimeoutError, LimitError
from foveate.system.timesync import ClockSync
from foveate.system.types import GalvoState

# The simulated controller's URL scheme, found by pyserial by package name only.
_SIM_HANDLERS = "foveate.hardware.sim"
if _SIM_HANDLERS not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(_SIM_HANDLERS)

#: Most bytes one attempt may read before it is declared a garbage flood.
_BYTE_BUDGET = 4 * (MAX_PAYLOAD + OVERHEAD)


class GalvoLink:
    """One serial connection to a galvo controller, shared by every backend on it (galvo, laser).

    Opened and closed by reference count. ``transact`` is the only way bytes
    move; it is thread-safe. Counters say what went wrong on the wire.
    """

    def __init__(self, port: "str | serial.SerialBase", clock: Clock, baudrate: int = 921600,
                 timeout_s: float = 0.02, retries: int = 3) -> None:
        # A URL is opened with serial_for_url; a SerialBase object (a test double, an already
        # configured port) is used as it is.
        self._given = None if isinstance(port, str) else port
        self._reopen: serial.SerialBase | None = None  # the port object of the last session, opened again next time
        self.url = port if isinstance(port, str) else str(getattr(port, "port", None) or type(port).__name__)
        self.clock = clock
        self.baudrate = int(baudrate)
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self._port: serial.SerialBase | None = None
        self._lock = threading.RLock()
        self._users = 0
        self._seq = 0
        self._decoder = FrameDecoder()
        self.identity: Identity | None = None
        self.sync = ClockSync("symmetric")
        self._device_us: int | None = None  # last unwrapped controller timestamp
        self.last_sizes = (0, 0)  # request and reply frame bytes of the latest transaction
        self.counters = {"transactions": 0, "retries": 0, "timeouts": 0, "crc_errors": 0, "stale_replies": 0,
                         "garbage_bytes": 0, "controller_errors": 0}

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> serial.SerialBase | None:
        return self._port

    def open(self) -> None:
        with self._lock:
            if self._users == 0:
                try:
                    if self._given is not None or self._reopen is not None:
                        port = self._given if self._given is not None else self._reopen
                        port.timeout = self.timeout_s
                    else:
                        port = serial.serial_for_url(self.url, do_not_open=True, baudrate=self.baudrate,
                                                     timeout=self.timeout_s, write_timeout=max(self.timeout_s, 0.1))
                    if hasattr(port, "bind_clock"):
                        port.bind_clock(self.clock)  # a simulated wire runs on the rig's clock
                    if not port.is_open:
                        port.open()
                except (serial.SerialException, OSError, ValueError) as exc:
                    raise DeviceError(f"{self.url}: cannot open the galvo controller's port: {exc}") from None
                self._port = port
                self._decoder = FrameDecoder()
                try:
                    self.identity = self._identify()
                except BaseException:
                    port.close()
                    self._port = None
                    raise
            self._users += 1

    def close(self) -> None:
        with self._lock:
            if self._users == 0:
                return
            self._users -= 1
            if self._users == 0 and self._port is not None:
                self._close_port()

    def _close_port(self) -> None:
        port, self._port = self._port, None
        try:
            port.close()
        except (serial.SerialException, OSError):
            pass  # a port whose device went away may fail to close; it is closed for us either way
        # pyserial's spy:// never closes the trace file it opened; do it here (and never reopen that port).
        out = getattr(getattr(port, "formatter", None), "output", None)
        if out is not None and getattr(out, "name", "").startswith("/") and not out.closed:
            out.close()
            self._reopen = None
        else:
            self._reopen = port

    def reconnect(self) -> None:
        """Close the port and open it again (after the device went away), keeping every user of the link.

        ``DeviceError`` if the port cannot be opened or the controller does not identify.
        """
        with self._lock:
            if self._users == 0:
                raise DeviceError(f"{self.url}: the controller link is not open")
            users, self._users = self._users, 0
            if self._port is not None:
                self._close_port()
            try:
                self.open()  # counts one user on success
            finally:
                self._users = users  # the users keep the link whether or not the port came back

    def _identify(self) -> Identity:
        payload, t0, t1 = self.transact(Command.IDENTIFY)
        ident = Identity.unpack(payload)
        if ident.protocol_version != PROTOCOL_VERSION:
            raise DeviceError(f"{self.url}: controller speaks protocol version {ident.protocol_version}, "
                              f"this driver speaks {PROTOCOL_VERSION}")
        self.identity = ident
        self.stamp(ident.timestamp_us, t0, t1, *self.last_sizes)
        return ident

    # ------------------------------------------------------------------ time
    def stamp(self, device_us: int, t_send_ns: int, t_recv_ns: int, request_bytes: int = 0,
              reply_bytes: int = 0) -> int:
        """Unwrap a controller timestamp, feed the clock sync with the exchange; returns device ns.

        The controller stamps a request when its last byte arrives, so the
        midpoint of the exchange is late by half the controller's turnaround
        (from IDENTIFY) plus half the difference between the reply's and the
        request's wire time at ``baudrate``; both are removed. (Over USB-CDC
        the baud rate is nominal: give the link's real rate.)
        """
        self._device_us = unwrap_u32(self._device_us, device_us)
        device_ns = self._device_us * 1000
        turnaround_ns = self.identity.turnaround_us * 1000 if self.identity else 0
        skew = ((reply_bytes - request_bytes) * 10e9 / self.baudrate + turnaround_ns) / 2
        mid = (t_send_ns + t_recv_ns) / 2 - skew
        self.sync.add(device_ns, int(mid), (t_recv_ns - t_send_ns) / 2)
        return device_ns

    def device_ns_of(self, device_us: int) -> int:
        """Unwrap a controller timestamp (e.g. a trigger time) near the latest one, without a sync sample."""
        return unwrap_u32(self._device_us, device_us) * 1000

    # ------------------------------------------------------------------ transactions
    def transact(self, cmd: int, payload: bytes = b"") -> tuple[bytes, int, int]:
        """Send one request and return ``(reply payload, host send ns, host receive ns)``.

        Raises ``ControllerError`` for an error reply, ``DeviceTimeoutError``
        after the retries, ``DeviceError`` if the port fails.
        """
        with self._lock:
            port = self._port
            if port is None:
                raise DeviceError(f"{self.url}: the controller link is not open")
            self._seq = (self._seq + 1) & 0xFF
            seq = self._seq
            frame = encode_frame(seq, cmd, payload)
            problem = "no reply"
            for attempt in range(self.retries + 1):
                if attempt:
                    self.counters["retries"] += 1
                try:
                    port.reset_input_buffer()
                    t_send = self.clock.now_ns()
                    port.write(frame)
                    reply, problem = self._await_reply(port, seq, cmd | REPLY_BIT)
                except serial.SerialException as exc:
                    raise DeviceError(f"{self.url}: serial I/O failed during {_name(cmd)}: {exc}") from None
                if reply is not None:
                    t_recv = self.clock.now_ns()
                    self.last_sizes = (len(frame), len(reply) + OVERHEAD)
                    self.counters["transactions"] += 1
                    err = reply_error(cmd, reply)
                    if err is not None:
                        self.counters["controller_errors"] += 1
                        raise err
                    return reply, t_send, t_recv
            raise DeviceTimeoutError(
                f"{self.url}: no valid reply to {_name(cmd)} (seq {seq}) after {self.retries + 1} attempts "
                f"of {self.timeout_s * 1e3:g} ms each; last problem: {problem}"
            )

    def _await_reply(self, port, seq: int, want_cmd: int) -> tuple[bytes | None, str]:
        dec = self._decoder
        dec.reset()
        crc0, garbage0 = dec.crc_errors, dec.garbage_bytes
        deadline = self.clock.now_ns() + int(self.timeout_s * 1e9)
        budget = _BYTE_BUDGET
        try:
            while True:
                need = dec.needed()
                chunk = port.read(need)
                budget -= len(chunk)
                for f in dec.feed(chunk):
                    if f.seq == seq and f.cmd == want_cmd:
                        return f.payload, ""
                    self.counters["stale_replies"] += 1
                if dec.crc_errors != crc0 and not dec.pending and not port.in_waiting:
                    # nothing left that could still be the reply: retry now rather than wait for the timeout
                    return None, "reply failed its CRC check"
                if len(chunk) < need:
                    what = f"partial frame ({dec.pending} bytes)" if dec.pending else "no reply"
                    self.counters["timeouts"] += 1
                    return None, f"timeout: {what}"
                if budget <= 0:
                    return None, f"more than {_BYTE_BUDGET} bytes without a valid reply"
                if self.clock.now_ns() >= deadline:
                    self.counters["timeouts"] += 1
                    return None, "timeout while receiving"
        finally:
            self.counters["crc_errors"] += dec.crc_errors - crc0
            self.counters["garbage_bytes"] += dec.garbage_bytes - garbage0


def _name(cmd: int) -> str:
    try:
        return Command(cmd).name
    except ValueError:
        return f"command 0x{cmd:02X}"


def shared_link(context: RigContext, name: str, port: str, baudrate: int, timeout_s: float, retries: int) -> GalvoLink:
    """The rig's one ``GalvoLink`` for ``port`` (galvo and laser on one controller share it)."""
    key = f"serial_galvo.link:{port}"
    link = context.shared.get(key)
    if link is None:
        link = context.shared[key] = GalvoLink(port, context.clock, baudrate, timeout_s, retries)
    elif link.baudrate != baudrate:
        raise ConfigError(f"{context.source}: devices.{name}.settings.baudrate: {baudrate} differs from "
                          f"{link.baudrate} used by another device on {port}")
    return link


# ---------------------------------------------------------------------------- settings
class TriggerSettings(BaseModel):
    """Trigger-out after settle, e.g. to fire the search camera."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["off", "flagged", "every"] = "off"
    delay_us: int = Field(0, ge=0, le=65535)
    pulse_us: int = Field(10, ge=1, le=65535)


class SerialGalvoSettings(DeviceSettings):
    port: str = Field(description="pyserial URL: /dev/ttyACM0, rfc2217://host:port, spy://..., galvosim://")
    baudrate: int = Field(921600, gt=0)
    timeout_s: float = Field(0.02, gt=0, le=5.0)
    retries: int = Field(3, ge=0, le=20)
    limits_deg: tuple[tuple[float, float], tuple[float, float]] = ((-15.0, 15.0), (-11.0, 11.0))
    park_deg: tuple[float, float] = (0.0, 0.0)
    dac_bits: int = Field(16, ge=16, le=32)
    gain_codes_per_deg: tuple[float, float] = (1638.375, 1638.375)  # 16 bit over +-20 deg (+-10 V at 0.5 V/deg)
    offset_codes: tuple[float, float] = (32767.5, 32767.5)
    slew_deg_per_ms: float | None = Field(None, gt=0)
    settle_tol_deg: float = Field(0.002, gt=0)
    watchdog_ms: int = Field(0, ge=0, le=65535)
    trigger: TriggerSettings = TriggerSettings()
    sync_burst: int = Field(8, ge=0, le=1000)
    poll_interval_s: float = Field(100e-6, gt=0)

    @model_validator(mode="after")
    def _limits_fit_the_dac(self) -> "SerialGalvoSettings":
        for axis, (lo, hi) in enumerate(self.limits_deg):
            scale = AxisScale(self.gain_codes_per_deg[axis], self.offset_codes[axis], self.dac_bits)
            for v in (lo, hi):
                try:
                    scale.to_code(v)
                except ValueError as exc:
                    raise ValueError(f"limits_deg axis {'xy'[axis]}: {exc} (check gain_codes_per_deg, "
                                     "offset_codes, dac_bits)") from None
        return self


class SerialGalvo(Galvo):
    """The host side of the galvo controller protocol; see the module docstring."""

    Settings = SerialGalvoSettings

    def __init__(self, name: str, clock: Clock, port: str, baudrate: int = 921600, timeout_s: float = 0.02,
                 retries: int = 3, limits_deg=((-15.0, 15.0), (-11.0, 11.0)), park_deg=(0.0, 0.0), dac_bits: int = 16,
                 gain_codes_per_deg=(1638.375, 1638.375), offset_codes=(32767.5, 32767.5),
                 slew_deg_per_ms: float | None = None, settle_tol_deg: float = 0.002, watchdog_ms: int = 0,
                 trigger: TriggerSettings | dict | None = None, sync_burst: int = 8, poll_interval_s: float = 100e-6,
                 link: GalvoLink | None = None) -> None:
        super().__init__(name, clock, limits_deg=limits_deg, park_deg=park_deg, poll_interval_s=poll_interval_s)
        self.link = link or GalvoLink(port, clock, baudrate, timeout_s, retries)
        self.scales = tuple(AxisScale(g, o, dac_bits) for g, o in zip(gain_codes_per_deg, offset_codes))
        self.dac_bits = int(dac_bits)
        self.slew_deg_per_ms = slew_deg_per_ms
        self.settle_tol_deg = float(settle_tol_deg)
        self.watchdog_ms = int(watchdog_ms)
        self.trigger = TriggerSettings.model_validate(trigger or {})
        self.sync_burst = int(sync_burst)
        self._trigger_next = False
        self._last_codes: tuple[int, int] | None = None
        self._trigger_count: int | None = None
        self._trigger_device_ns: list[int] = []
        self.triggers_unseen = 0
        # Every commandable angle must have a DAC code (the park position lies inside the limits).
        for axis, (lo, hi) in enumerate(self.limits_deg):
            for v in (lo, hi):
                try:
                    self.scales[axis].to_code(v)
                except ValueError as exc:
                    raise ConfigError(f"{name}: limits_deg axis {'xy'[axis]}: {exc}") from None

    @classmethod
    def from_config(cls, name: str, settings: SerialGalvoSettings, context: RigContext) -> "SerialGalvo":
        s = settings.model_dump()
        link = shared_link(context, name, s["port"], s["baudrate"], s["timeout_s"], s["retries"])
        return cls(name=name, clock=context.clock, link=link, **s)

    # ------------------------------------------------------------------ helpers
    def _codes(self, theta_x_deg: float, theta_y_deg: float) -> tuple[int, int]:
        try:
            return self.scales[0].to_code(theta_x_deg), self.scales[1].to_code(theta_y_deg)
        except ValueError as exc:
            raise LimitError(f"{self.name}: {exc}") from None

    def _transact(self, cmd: Command, payload: bytes = b"") -> tuple[bytes, int, int]:
        try:
            return self.link.transact(cmd, payload)
        except ControllerError as exc:
            if exc.code == ErrorCode.OUT_OF_RANGE:
                raise LimitError(f"{self.name}: {exc}") from None
            if exc.code == ErrorCode.FAULT_LATCHED:
                st = self.read_status()
                raise DeviceError(f"{self.name}: controller refused {cmd.name}: fault latched "
                                  f"({', '.join(fault_names(st.faults)) or 'unknown'}); the mirror is parked. "
                                  "Call clear_faults() once the cause is gone.") from None
            raise DeviceError(f"{self.name}: {exc}") from None

    def _ack(self, cmd: Command, payload: bytes = b"") -> int:
        reply, t0, t1 = self._transact(cmd, payload)
        return self.link.stamp(unpack_ack(reply), t0, t1, *self.link.last_sizes)

    # ------------------------------------------------------------------ lifecycle
    def _do_open(self) -> None:
        self.link.open()
        try:
            self._configure()
        except BaseException:
            self.link.close()
            raise

    def _configure(self) -> None:
        ident = self.link.identity
        if ident.n_axes < 2:
            raise DeviceError(f"{self.name}: controller has {ident.n_axes} axis, a two-axis galvo needs 2")
        if ident.dac_bits != self.dac_bits:
            raise DeviceError(f"{self.name}: controller DAC has {ident.dac_bits} bits but the rig file says "
                              f"dac_bits: {self.dac_bits}; fix settings.dac_bits (and gain/offset)")
        st = self.read_status()
        if st.faults & LATCHING_FAULTS:
            self.log.warning("clearing faults latched before this session: %s", ", ".join(fault_names(st.faults)))
        self._ack(Command.CLEAR_FAULTS)
        self._ack(Command.SET_WATCHDOG, SET_WATCHDOG.pack(0))
        lim = []
        for axis, (lo, hi) in enumerate(self.limits_deg):
            a, b = self.scales[axis].to_code(lo), self.scales[axis].to_code(hi)
            lim += [min(a, b), max(a, b)]
        park = self._codes(*self.park_deg)
        # The controller keeps its park position inside its limits: open them fully, move park, then narrow.
        top = (1 << self.dac_bits) - 1
        self._ack(Command.SET_LIMITS, SET_LIMITS.pack(0, top, 0, top))
        self._ack(Command.SET_PARK, SET_PARK.pack(*park))
        self._ack(Command.SET_LIMITS, SET_LIMITS.pack(*lim))
        slew = (0, 0)
        if self.slew_deg_per_ms:
            slew = tuple(max(1, round(self.slew_deg_per_ms * abs(s.gain_codes_per_deg))) for s in self.scales)
        self._ack(Command.SET_SLEW, SET_SLEW.pack(*slew))
        window = max(1, math.ceil(self.settle_tol_deg * max(abs(s.gain_codes_per_deg) for s in self.scales)))
        mode = {"off": TriggerMode.OFF, "flagged": TriggerMode.FLAGGED, "every": TriggerMode.EVERY}[self.trigger.mode]
        self._ack(Command.SET_TRIGGER, SET_TRIGGER.pack(window, self.trigger.delay_us, self.trigger.pulse_us, mode))
        for _ in range(self.sync_burst):
            self.read_status()
        self._ack(Command.SET_WATCHDOG, SET_WATCHDOG.pack(self.watchdog_ms))

    def _do_close(self) -> None:
        try:
            self._ack(Command.SET_WATCHDOG, SET_WATCHDOG.pack(0))
        finally:
            self.link.close()

    # ------------------------------------------------------------------ interface
    def _do_move_to(self, theta_x_deg: float, theta_y_deg: float) -> None:
        codes = self._codes(theta_x_deg, theta_y_deg)
        flags = MoveFlag.TRIGGER if self._trigger_next else MoveFlag(0)
        self._ack(Command.SET_POSITION, SET_POSITION.pack(codes[0], codes[1], int(flags)))
        self._trigger_next = False
        self._last_codes = codes

    def park(self) -> None:
        """Move to the park position with the controller's PARK command (accepted even with a fault latched)."""
        self._check_open()
        self._ack(Command.PARK)
        self._commanded_deg = self.park_deg
        self._last_codes = self._codes(*self.park_deg)

    def read_status(self) -> ControllerStatus:
        """The controller's raw status (codes, flags, faults, trigger count); feeds the clock sync."""
        reply, t0, t1 = self.link.transact(Command.READ_STATUS)
        st = ControllerStatus.unpack(reply)
        self._last_stamp = (self.link.stamp(st.timestamp_us, t0, t1, *self.link.last_sizes), t0, t1)
        self._note_triggers(st)
        return st

    def _note_triggers(self, st: ControllerStatus) -> None:
        """Record the latest trigger pulse on the host clock whenever the count moved (see ``trigger_times_ns``)."""
        if self._trigger_count is None:  # first look: pulses from before this session are not ours
            self._trigger_count = st.trigger_count
            return
        new = (st.trigger_count - self._trigger_count) & 0xFFFFFFFF
        if new == 0:
            return
        self._trigger_count = st.trigger_count
        self.triggers_unseen += new - 1  # pulses that came and went between two status reads
        self._trigger_device_ns.append(self.link.device_ns_of(st.trigger_timestamp_us))

    def trigger_times_ns(self) -> list[int]:
        """Host-clock times of the trigger pulses seen in status reads, mapped with the current clock fit.

        Read status after each triggered move to see every pulse (``triggers_unseen`` counts the others).
        Pair them with an event camera's ``trigger_times_ns()`` using ``foveate.system.timesync.match_triggers``.
        """
        if not self._trigger_device_ns:
            return []
        fit = self.link.sync.refit()
        return [int(v) for v in fit.to_host_ns(np.array(self._trigger_device_ns, dtype=np.float64))]

    def _do_position(self) -> GalvoState:
        st = self.read_status()
        device_ns, t0, t1 = self._last_stamp
        measured = tuple(s.to_deg(c) for s, c in zip(self.scales, st.measured_codes))
        if st.commanded_codes == self._last_codes:
            commanded = self._commanded_deg  # exactly what the host asked for
        else:  # the controller moved on its own (watchdog park) or another host moved it
            commanded = tuple(s.to_deg(c) for s, c in zip(self.scales, st.commanded_codes))
        return GalvoState(commanded_deg=commanded, measured_deg=measured,
                          settled=bool(st.flags & StatusFlag.IN_POSITION), t_ns=(t0 + t1) // 2,
                          device_t_ns=device_ns, faults=fault_names(st.faults))

    # ------------------------------------------------------------------ extras
    def rehome(self, settle_timeout_s: float = 0.05) -> None:
        """Configure the controller again (as at open: clears faults, limits, park, slew, trigger, watchdog), park
        and wait until settled: after a controller restart (``reset`` fault) or a watchdog park."""
        self._check_open()
        self._trigger_count = None  # a restarted controller's trigger count is not ours to compare
        self._configure()
        self.park()
        self.wait_settled(settle_timeout_s)

    def recover(self, settle_timeout_s: float = 0.05) -> None:
        """Bring the galvo back after a fault: re-home; if the link is dead, reconnect the port first."""
        self._check_open()
        try:
            self.link.transact(Command.READ_STATUS)
        except DeviceError:
            self.link.reconnect()
        self.rehome(settle_timeout_s)

    def clear_faults(self) -> None:
        """Clear latched faults (after a watchdog park) so moves are accepted again."""
        self._check_open()
        self._ack(Command.CLEAR_FAULTS)

    def trigger_next_move(self) -> None:
        """Fire the trigger-out once the next move has settled (trigger mode ``flagged``)."""
        self._check_open()
        if self.trigger.mode != "flagged":
            raise DeviceError(f"{self.name}: trigger.mode is '{self.trigger.mode}', set it to 'flagged' to "
                              "trigger chosen moves")
        self._trigger_next = True

    def last_trigger(self) -> tuple[int, int | None]:
        """``(count, host ns of the latest trigger pulse or None)`` from the controller's status."""
        st = self.read_status()
        if st.trigger_count == 0:
            return 0, None
        device_ns = self.link.device_ns_of(st.trigger_timestamp_us)
        return st.trigger_count, int(self.link.sync.to_host_ns(device_ns))

    def _do_status(self) -> dict[str, Any]:
        out = super()._do_status()
        st = self.read_status()
        ident = self.link.identity
        out.update({
            "port": self.link.url,
            "controller": f"{ident.model} fw {ident.firmware[0]}.{ident.firmware[1]}, {ident.dac_bits}-bit DAC",
            "faults": list(fault_names(st.faults)),
            "watchdog_ms": self.watchdog_ms,
            "link": dict(self.link.counters),
            "sync": self.link.sync.summary(),
        })
        return out
