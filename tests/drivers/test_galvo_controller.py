"""The simulated controller against the spec's rules, frame by frame (hardware/protocol/galvo_serial.md)."""

import pytest

from foveate.drivers.galvo_protocol import (
    SET_AUX,
    SET_LIMITS,
    SET_PARK,
    SET_POSITION,
    SET_SLEW,
    SET_TRIGGER,
    SET_WATCHDOG,
    Command,
    ControllerStatus,
    ErrorCode,
    Fault,
    FrameDecoder,
    Identity,
    StatusFlag,
    encode_frame,
    unpack_ack,
)
from foveate.hardware.sim.galvo_controller import ControllerConfig, GalvoController, config_from_options


class Wire:
    """Talk to a controller with raw frames at explicit times."""

    def __init__(self, **cfg):
        self.ctl = GalvoController(ControllerConfig(noise_deg=0.0, **cfg))
        self.t = 0
        self.seq = 0

    def send(self, cmd, payload=b"", dt_ns=100_000, seq=None):
        self.t += dt_ns
        self.seq = (self.seq + 1) & 0xFF if seq is None else seq
        out = self.ctl.receive(encode_frame(self.seq, cmd, payload), self.t)
        frames = FrameDecoder().feed(out)
        assert len(frames) <= 1
        return frames[0] if frames else None

    def status(self):
        return ControllerStatus.unpack(self.send(Command.READ_STATUS).payload)


def _code(reply):
    return ErrorCode(reply.payload[0]), reply.payload[1] if len(reply.payload) > 1 else None


def test_identify_and_reply_framing():
    w = Wire(clock_offset_us=42)
    r = w.send(Command.IDENTIFY)
    assert (r.seq, r.cmd) == (1, 0x81)
    ident = Identity.unpack(r.payload)
    assert (ident.protocol_version, ident.n_axes, ident.dac_bits, ident.max_payload) == (1, 2, 16, 64)
    assert ident.timestamp_us == 42 + 100  # µs counter at the moment the request arrived


@pytest.mark.parametrize("cmd, payload, code", [
    (0x3F, b"", ErrorCode.UNKNOWN_COMMAND),
    (Command.SET_POSITION, b"\x00" * 8, ErrorCode.BAD_LENGTH),
    (Command.READ_STATUS, b"\x00", ErrorCode.BAD_LENGTH),
    (Command.SET_LIMITS, SET_LIMITS.pack(100, 100, 0, 10), ErrorCode.BAD_ARGUMENT),  # min >= max
    (Command.SET_LIMITS, SET_LIMITS.pack(0, 70000, 0, 10), ErrorCode.OUT_OF_RANGE),  # above the DAC
    (Command.SET_LIMITS, SET_LIMITS.pack(0, 1000, 0, 65535), ErrorCode.BAD_ARGUMENT),  # strands the park position
    (Command.SET_TRIGGER, SET_TRIGGER.pack(0, 0, 10, 1), ErrorCode.BAD_ARGUMENT),  # zero window
    (Command.SET_TRIGGER, SET_TRIGGER.pack(4, 0, 10, 9), ErrorCode.BAD_ARGUMENT),  # unknown mode
    (Command.SET_AUX, SET_AUX.pack(3, 1, 100), ErrorCode.BAD_ARGUMENT),  # no aux output 3
])
def test_error_codes(cmd, payload, code):
    r = Wire().send(cmd, payload)
    assert r.cmd == (cmd | 0x80) and _code(r)[0] == code and len(r.payload) == 2


def test_positions_outside_limits_are_refused_not_clipped():
    w = Wire()
    assert _code(w.send(Command.SET_LIMITS, SET_LIMITS.pack(30000, 35000, 31000, 34000)))[0] == ErrorCode.OK
    assert _code(w.send(Command.SET_POSITION, SET_POSITION.pack(36000, 32000, 0))) == (ErrorCode.OUT_OF_RANGE, 0)
    assert _code(w.send(Command.SET_POSITION, SET_POSITION.pack(32000, 30999, 0))) == (ErrorCode.OUT_OF_RANGE, 1)
    assert _code(w.send(Command.SET_PARK, SET_PARK.pack(29000, 32000))) == (ErrorCode.OUT_OF_RANGE, 0)
    assert w.status().commanded_codes == (32768, 32768)  # nothing moved
    assert _code(w.send(Command.SET_POSITION, SET_POSITION.pack(35000, 34000, 0)))[0] == ErrorCode.OK
    assert w.status().commanded_codes == (35000, 34000)


def test_retransmission_is_answered_from_the_cache_not_executed_again():
    w = Wire()
    w.send(Command.SET_TRIGGER, SET_TRIGGER.pack(4, 0, 10, 1))
    first = w.send(Command.SET_POSITION, SET_POSITION.pack(34000, 32000, 1), seq=50)
    again = w.send(Command.SET_POSITION, SET_POSITION.pack(34000, 32000, 1), seq=50, dt_ns=5_000_000)
    assert again == first and w.ctl.counters.duplicates == 1
    w.send(Command.READ_STATUS, dt_ns=5_000_000)
    assert len(w.ctl.trigger_pulses) == 1  # one move, one pulse


def test_in_position_flag_and_trigger_after_settle():
    w = Wire()
    w.send(Command.SET_TRIGGER, SET_TRIGGER.pack(4, 100, 10, 2))  # every move, 100 µs after in position
    w.send(Command.SET_POSITION, SET_POSITION.pack(40000, 30000, 0))
    st = w.status()
    assert not st.flags & StatusFlag.IN_POSITION and st.flags & StatusFlag.TRIGGER_PENDING
    st = w.send(Command.READ_STATUS, dt_ns=10_000_000)
    st = ControllerStatus.unpack(st.payload)
    assert st.flags & StatusFlag.IN_POSITION and st.trigger_count == 1
    pulse = w.ctl.trigger_pulses[0]
    assert st.trigger_timestamp_us == pulse.device_us
    assert abs(st.measured_codes[0] - 40000) <= 4 and abs(st.measured_codes[1] - 30000) <= 4


def test_slew_limit_and_ramping_flag():
    w = Wire(servo_period_us=10)
    w.send(Command.SET_SLEW, SET_SLEW.pack(1000, 0))  # x: 1000 codes/ms; y: unlimited
    w.send(Command.SET_POSITION, SET_POSITION.pack(32768 + 5000, 32768 + 5000, 0))
    st = w.status()  # 100 µs later: x setpoint has moved ~100 codes, y all the way
    assert st.flags & StatusFlag.RAMPING
    assert w.ctl.setpoint[0] == pytest.approx(32768 + 100, abs=11) and w.ctl.setpoint[1] == 32768 + 5000
    st = ControllerStatus.unpack(w.send(Command.READ_STATUS, dt_ns=10_000_000).payload)
    assert not st.flags & StatusFlag.RAMPING and st.flags & StatusFlag.IN_POSITION


def test_watchdog_parks_switches_aux_off_and_latches():
    w = Wire()
    w.send(Command.SET_AUX, SET_AUX.pack(0, 1, 50000))
    w.send(Command.SET_POSITION, SET_POSITION.pack(40000, 30000, 0))
    w.send(Command.SET_WATCHDOG, SET_WATCHDOG.pack(20))
    st = w.send(Command.READ_STATUS, dt_ns=19_000_000)
    assert not ControllerStatus.unpack(st.payload).faults  # 19 ms: still fed
    st = ControllerStatus.unpack(w.send(Command.READ_STATUS, dt_ns=25_000_000).payload)
    assert st.faults & Fault.WATCHDOG and st.commanded_codes == (32768, 32768) and not st.flags & StatusFlag.AUX0_ON
    assert st.flags & StatusFlag.PARKED
    assert _code(w.send(Command.SET_POSITION, SET_POSITION.pack(40000, 30000, 0)))[0] == ErrorCode.FAULT_LATCHED
    assert _code(w.send(Command.SET_AUX, SET_AUX.pack(0, 1, 50000)))[0] == ErrorCode.FAULT_LATCHED
    assert _code(w.send(Command.PARK))[0] == ErrorCode.OK  # parking is always allowed
    assert _code(w.send(Command.CLEAR_FAULTS))[0] == ErrorCode.OK
    assert _code(w.send(Command.SET_POSITION, SET_POSITION.pack(40000, 30000, 0)))[0] == ErrorCode.OK


def test_partial_frame_discarded_after_inter_byte_timeout_and_bad_crc_unanswered():
    ctl = GalvoController(ControllerConfig(noise_deg=0.0))
    frame = encode_frame(1, Command.READ_STATUS)
    assert ctl.receive(frame[:4], 1_000_000) == b""
    # 6 ms later the rest of a *new* frame arrives: the stale half is dropped, the new frame answered
    out = ctl.receive(encode_frame(2, Command.IDENTIFY), 7_000_000)
    assert FrameDecoder().feed(out)[0].seq == 2 and ctl.counters.partial_timeouts == 1
    bad = bytearray(encode_frame(3, Command.PARK))
    bad[-1] ^= 1
    assert ctl.receive(bytes(bad), 8_000_000) == b""  # no reply to a frame whose SEQ cannot be trusted
    assert ctl.faults & Fault.RX_ERROR


def test_clock_wraps_and_drifts():
    ctl = GalvoController(ControllerConfig(clock_offset_us=2**32 - 10, clock_drift_ppm=100.0))
    assert ctl.device_us(0) == 2**32 - 10
    assert ctl.device_us(20_000) == 10  # wrapped
    assert ctl.device_us(10**10) == (2**32 - 10 + int(10**7 * 1.0001)) % 2**32


def test_url_options_are_checked():
    assert config_from_options({"natural_freq_hz": "1500", "dac_bits": "18"}).dac_bits == 18
    with pytest.raises(ValueError, match="unknown option 'dacbits'"):
        config_from_options({"dacbits": "18"})
    with pytest.raises(ValueError, match="option 'seed': expected a number"):
        config_from_options({"seed": "x"})


def test_ack_timestamps_follow_the_clock():
    w = Wire()
    a = unpack_ack(w.send(Command.PARK).payload)
    b = unpack_ack(w.send(Command.PARK, dt_ns=1_500_000).payload)
    assert b - a == 1500
