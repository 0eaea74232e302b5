"""The galvo controller's serial protocol: frames, CRC-16, commands, payloads (pure functions).

The spec a firmware author implements from is ``hardware/protocol/galvo_serial.md``;
this module is its executable form, shared by the host driver
(``foveate.drivers.serial_galvo``) and the simulated controller.

Frame (all multi-byte fields little-endian)::

    offset  size  field
    0       2     sync  A5 5A
    2       1     LEN   payload length, 0..MAX_PAYLOAD
    3       1     SEQ   sequence number (host picks; the reply repeats it)
    4       1     CMD   command code; a reply carries CMD | 0x80
    5       LEN   payload
    5+LEN   2     CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over LEN..payload

Every reply payload starts with a status byte (0 = OK, else an ``ErrorCode``);
an error reply's payload is ``status, detail`` (detail: axis index or 0xFF).
"""

from __future__ import annotations

import binascii
import enum
import math
import struct
from dataclasses import dataclass

from foveate.system.errors import DeviceError

SYNC = b"\xa5\x5a"
HEADER_SIZE = 5  # sync(2) + len + seq + cmd
CRC_SIZE = 2
OVERHEAD = HEADER_SIZE + CRC_SIZE
MAX_PAYLOAD = 64
REPLY_BIT = 0x80
PROTOCOL_VERSION = 1
NO_DETAIL = 0xFF


class Command(enum.IntEnum):
    IDENTIFY = 0x01
    SET_POSITION = 0x02
    READ_STATUS = 0x03
    SET_LIMITS = 0x04
    SET_SLEW = 0x05
    PARK = 0x06
    SET_PARK = 0x07
    SET_WATCHDOG = 0x08
    SET_TRIGGER = 0x09
    SET_AUX = 0x0A
    CLEAR_FAULTS = 0x0B


class ErrorCode(enum.IntEnum):
    OK = 0x00
    UNKNOWN_COMMAND = 0x01
    BAD_LENGTH = 0x02
    OUT_OF_RANGE = 0x03
    FAULT_LATCHED = 0x04
    BAD_ARGUMENT = 0x05


ERROR_TEXT = {
    ErrorCode.UNKNOWN_COMMAND: "unknown command",
    ErrorCode.BAD_LENGTH: "payload length wrong for the command",
    ErrorCode.OUT_OF_RANGE: "position outside the controller's limits (refused, not clipped)",
    ErrorCode.FAULT_LATCHED: "a fault is latched (watchdog or servo); send CLEAR_FAULTS first",
    ErrorCode.BAD_ARGUMENT: "bad argument",
}


class StatusFlag(enum.IntFlag):
    IN_POSITION = 0x01  # setpoint reached and both axes inside the in-position window
    RAMPING = 0x02  # slew limiter still moving the setpoint
    TRIGGER_PENDING = 0x04  # a trigger pulse will fire after settling
    WATCHDOG_ARMED = 0x08
    AUX0_ON = 0x10
    PARKED = 0x20  # the setpoint is the park position


class Fault(enum.IntFlag):
    WATCHDOG = 0x0001  # host silent too long: mirror parked, aux off; latched
    SERVO = 0x0002  # servo driver reported a fault; latched
    RX_ERROR = 0x0004  # frames with bad CRC or framing seen (informational)
    RESET = 0x0008  # the controller restarted (power cycle, brown-out) and lost its configuration; latched


LATCHING_FAULTS = Fault.WATCHDOG | Fault.SERVO | Fault.RESET


class TriggerMode(enum.IntEnum):
    OFF = 0
    FLAGGED = 1  # fire after moves with MoveFlag.TRIGGER
    EVERY = 2  # fire after every move


class MoveFlag(enum.IntFlag):
    TRIGGER = 0x01


def fault_names(faults: int) -> tuple[str, ...]:
    return tuple(f.name.lower() for f in Fault if faults & f)


class ProtocolError(DeviceError):
    """A frame or payload does not follow the protocol."""


class ControllerError(DeviceError):
    """The controller answered with an error code."""

    def __init__(self, message: str, code: ErrorCode, detail: int = NO_DETAIL) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


# ---------------------------------------------------------------------------- CRC and frames
def crc16(data: bytes, init: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out); ``crc16(b"123456789") == 0x29B1``."""
    return binascii.crc_hqx(data, init)


def encode_frame(seq: int, cmd: int, payload: bytes = b"") -> bytes:
    """One frame: sync, LEN, SEQ, CMD, payload, CRC-16 (little-endian)."""
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"seq must be 0..255, got {seq}")
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"cmd must be 0..255, got {cmd}")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_PAYLOAD={MAX_PAYLOAD}")
    body = bytes((len(payload), seq, cmd)) + payload
    return SYNC + body + crc16(body).to_bytes(2, "little")


@dataclass(frozen=True)
class RawFrame:
    seq: int
    cmd: int
    payload: bytes

    @property
    def is_reply(self) -> bool:
        return bool(self.cmd & REPLY_BIT)


class FrameDecoder:
    """Incremental frame parser that resynchronises after garbage.

    ``feed`` returns every complete frame with a valid CRC. A bad CRC or an
    impossible length means the sync marker was false (or the frame was hit
    by noise): the parser drops one byte and scans for the next marker, so a
    valid frame right after garbage is still found. Counters say what was lost.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbage_bytes = 0
        self.crc_errors = 0
        self.frames = 0

    def reset(self) -> None:
        """Forget a partial frame (counted as garbage)."""
        self.garbage_bytes += len(self._buf)
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    def needed(self) -> int:
        """Fewest bytes that could complete the frame being received (>= 1), so a reader can ask for exactly that."""
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return HEADER_SIZE - len(buf)
        return max(1, OVERHEAD + buf[2] - len(buf))

    def feed(self, data: bytes) -> list[RawFrame]:
        buf = self._buf
        buf += data
        out: list[RawFrame] = []
        while True:
            i = buf.find(SYNC)
            if i < 0:
                # keep a trailing first sync byte; everything else is garbage
                keep = 1 if buf[-1:] == SYNC[:1] else 0
                self.garbage_bytes += len(buf) - keep
                del buf[: len(buf) - keep]
                return out
            if i:
                self.garbage_bytes += i
                del buf[:i]
            if len(buf) < HEADER_SIZE:
                return out
            n = buf[2]
            if n > MAX_PAYLOAD:
                self.garbage_bytes += 1
                del buf[:1]
                continue
            total = OVERHEAD + n
            if len(buf) < total:
                return out
            body = bytes(buf[2 : HEADER_SIZE + n])
            crc = int.from_bytes(buf[HEADER_SIZE + n : total], "little")
            if crc16(body) != crc:
                self.crc_errors += 1
                self.garbage_bytes += 1
                del buf[:1]
                continue
            del buf[:total]
            self.frames += 1
            out.append(RawFrame(seq=body[1], cmd=body[2], payload=body[3:]))


# ---------------------------------------------------------------------------- payloads
_U8 = struct.Struct("<B")
SET_POSITION = struct.Struct("<IIB")  # code_x, code_y, MoveFlag
SET_LIMITS = struct.Struct("<IIII")  # x_min, x_max, y_min, y_max (codes, inclusive)
SET_SLEW = struct.Struct("<II")  # max codes per ms per axis; 0 = unlimited
SET_PARK = struct.Struct("<II")  # park code_x, code_y
SET_WATCHDOG = struct.Struct("<H")  # timeout ms; 0 = disarm
SET_TRIGGER = struct.Struct("<IHHB")  # in-position window (codes), delay us, pulse us, TriggerMode
SET_AUX = struct.Struct("<BBH")  # output index, on (0/1), level 0..65535
ACK = struct.Struct("<BI")  # status, controller timestamp us
IDENTIFY_REPLY = struct.Struct("<BBBBBBBBHI")  # status, proto, fw major/minor, axes, dac bits, aux, max payload, turnaround us, ts
STATUS_REPLY = struct.Struct("<BIBHIIIIII")  # status, ts, flags, faults, meas x, meas y, cmd x, cmd y, trig count, trig ts
ERROR_REPLY = struct.Struct("<BB")  # status, detail

REQUEST_SIZES = {
    Command.IDENTIFY: 0,
    Command.SET_POSITION: SET_POSITION.size,
    Command.READ_STATUS: 0,
    Command.SET_LIMITS: SET_LIMITS.size,
    Command.SET_SLEW: SET_SLEW.size,
    Command.PARK: 0,
    Command.SET_PARK: SET_PARK.size,
    Command.SET_WATCHDOG: SET_WATCHDOG.size,
    Command.SET_TRIGGER: SET_TRIGGER.size,
    Command.SET_AUX: SET_AUX.size,
    Command.CLEAR_FAULTS: 0,
}


@dataclass(frozen=True)
class Identity:
    protocol_version: int
    firmware: tuple[int, int]
    n_axes: int
    dac_bits: int
    n_aux: int
    max_payload: int
    turnaround_us: int  # typical time from a request's last byte to the reply's first byte
    timestamp_us: int
    model: str

    def pack(self) -> bytes:
        head = IDENTIFY_REPLY.pack(0, self.protocol_version, *self.firmware, self.n_axes, self.dac_bits,
                                   self.n_aux, self.max_payload, self.turnaround_us, self.timestamp_us)
        return head + self.model.encode("ascii")[: MAX_PAYLOAD - IDENTIFY_REPLY.size]

    @classmethod
    def unpack(cls, payload: bytes) -> "Identity":
        _check_size(payload, IDENTIFY_REPLY.size, "IDENTIFY reply", at_least=True)
        _, proto, fw0, fw1, axes, bits, aux, maxp, turn, ts = IDENTIFY_REPLY.unpack_from(payload)
        model = payload[IDENTIFY_REPLY.size :].decode("ascii", errors="replace")
        return cls(proto, (fw0, fw1), axes, bits, aux, maxp, turn, ts, model)


@dataclass(frozen=True)
class ControllerStatus:
    timestamp_us: int
    flags: StatusFlag
    faults: Fault
    measured_codes: tuple[int, int]
    commanded_codes: tuple[int, int]
    trigger_count: int
    trigger_timestamp_us: int

    def pack(self) -> bytes:
        return STATUS_REPLY.pack(0, self.timestamp_us, int(self.flags), int(self.faults), *self.measured_codes,
                                 *self.commanded_codes, self.trigger_count, self.trigger_timestamp_us)

    @classmethod
    def unpack(cls, payload: bytes) -> "ControllerStatus":
        _check_size(payload, STATUS_REPLY.size, "READ_STATUS reply")
        _, ts, flags, faults, mx, my, cx, cy, tc, tts = STATUS_REPLY.unpack(payload)
        return cls(ts, StatusFlag(flags), Fault(faults), (mx, my), (cx, cy), tc, tts)


def _check_size(payload: bytes, size: int, what: str, at_least: bool = False) -> None:
    ok = len(payload) >= size if at_least else len(payload) == size
    if not ok:
        raise ProtocolError(f"{what}: {len(payload)} payload bytes, expected {'at least ' if at_least else ''}{size}")


def unpack_ack(payload: bytes) -> int:
    """Controller timestamp (us) of a plain acknowledgement."""
    _check_size(payload, ACK.size, "acknowledgement")
    return ACK.unpack(payload)[1]


def pack_ack(timestamp_us: int) -> bytes:
    return ACK.pack(0, timestamp_us & 0xFFFFFFFF)


def pack_error(code: ErrorCode, detail: int = NO_DETAIL) -> bytes:
    return ERROR_REPLY.pack(int(code), detail & 0xFF)


def reply_error(cmd: int, payload: bytes) -> ControllerError | None:
    """The ``ControllerError`` an error reply stands for, or None for status OK."""
    if not payload:
        return ControllerError(f"reply to {_cmd_name(cmd)} has no status byte", ErrorCode.BAD_LENGTH)
    status = payload[0]
    if status == ErrorCode.OK:
        return None
    detail = payload[1] if len(payload) > 1 else NO_DETAIL
    try:
        code = ErrorCode(status)
        text = ERROR_TEXT[code]
    except (ValueError, KeyError):
        code, text = ErrorCode.BAD_ARGUMENT, f"unknown error code 0x{status:02X}"
    where = f" (axis {'xy'[detail]})" if detail in (0, 1) else ""
    return ControllerError(f"controller refused {_cmd_name(cmd)}: {code.name}: {text}{where}", code, detail)


def _cmd_name(cmd: int) -> str:
    try:
        return Command(cmd & ~REPLY_BIT).name
    except ValueError:
        return f"command 0x{cmd:02X}"


# ---------------------------------------------------------------------------- angles <-> DAC codes
@dataclass(frozen=True)
class AxisScale:
    """Mechanical degrees to DAC codes for one axis: ``code = offset_codes + gain_codes_per_deg * deg``.

    ``dac_bits`` >= 16; codes are unsigned ``0 .. 2**dac_bits - 1``.
    """

    gain_codes_per_deg: float
    offset_codes: float
    dac_bits: int = 16

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gain_codes_per_deg) and self.gain_codes_per_deg != 0):
            raise ValueError(f"gain_codes_per_deg must be finite and non-zero, got {self.gain_codes_per_deg}")
        if not 16 <= self.dac_bits <= 32:
            raise ValueError(f"dac_bits must be 16..32, got {self.dac_bits}")

    @property
    def max_code(self) -> int:
        return (1 << self.dac_bits) - 1

    def to_code(self, deg: float) -> int:
        """Nearest code; ``ValueError`` if it falls outside the DAC range (never clipped)."""
        code = round(self.offset_codes + self.gain_codes_per_deg * deg)
        if not 0 <= code <= self.max_code:
            raise ValueError(f"{deg:.6g} deg maps to DAC code {code}, outside 0..{self.max_code}")
        return int(code)

    def to_deg(self, code: float) -> float:
        return (code - self.offset_codes) / self.gain_codes_per_deg

    @property
    def deg_per_code(self) -> float:
        return 1.0 / abs(self.gain_codes_per_deg)


def full_scale(dac_bits: int = 16, full_scale_deg: float = 20.0) -> AxisScale:
    """The scale where code 0 is ``-full_scale_deg`` and the top code ``+full_scale_deg`` (e.g. +-10 V at 0.5 V/deg)."""
    top = (1 << dac_bits) - 1
    return AxisScale(top / (2.0 * full_scale_deg), top / 2.0, dac_bits)


def unwrap_u32(previous: int | None, raw: int) -> int:
    """Extend a wrapping 32-bit counter: the value nearest ``previous`` that is congruent to ``raw`` mod 2**32."""
    if previous is None:
        return raw
    delta = (raw - previous) & 0xFFFFFFFF
    if delta >= 1 << 31:
        delta -= 1 << 32
    return previous + delta
