"""Byte-exact exchanges of the serial galvo and laser drivers (scripted both ways; unused pairs fail)."""

import pytest

from foveate.drivers.serial_galvo import SerialGalvo
from foveate.drivers.serial_laser import SerialLaser
from foveate.system.errors import DeviceError, DeviceTimeoutError, LimitError


IDENTIFY = ("a5 5a 00 01 01 8c ef",
            # status 0, proto 1, fw 1.0, 2 axes, 16-bit DAC, 1 aux, max payload 64, turnaround 20 us, ts 0x4b,
            # "foveate galvosim"
            "a5 5a 1e 01 81 00 01 01 00 02 10 01 40 14 00 4b 00 00 00 66 6f 76 65 61 74 65 20 67 61 6c 76 6f 73 69 6d 86 0c")

# SerialGalvo.open() with sync_burst=0, watchdog_ms=200, default limits (+-15, +-11 deg) and gains.
OPEN = [
    IDENTIFY,
    ("a5 5a 00 02 03 9d 9a",  # READ_STATUS: no faults latched
     "a5 5a 20 02 83 00 27 02 00 00 21 00 00 00 80 00 00 00 80 00 00 00 80 00 00 00 80 00 00 00 00 00 00 00 00 00 00 75 d9"),
    ("a5 5a 00 03 0b a4 28", "a5 5a 05 03 8b 00 2e 04 00 00 54 ff"),  # CLEAR_FAULTS
    ("a5 5a 02 04 08 00 00 df 36", "a5 5a 05 04 88 00 26 05 00 00 03 9a"),  # SET_WATCHDOG 0 while configuring
    ("a5 5a 10 05 04 00 00 00 00 ff ff 00 00 00 00 00 00 ff ff 00 00 1b c0",  # SET_LIMITS: whole DAC range
     "a5 5a 05 05 84 00 b6 06 00 00 4e b6"),
    ("a5 5a 08 06 07 00 80 00 00 00 80 00 00 36 24", "a5 5a 05 06 87 00 ef 07 00 00 50 11"),  # SET_PARK 0x8000
    ("a5 5a 10 07 04 00 20 00 00 ff df 00 00 99 39 00 00 66 c6 00 00 97 82",  # SET_LIMITS 0x2000..0xdfff, 0x3999..0xc666
     "a5 5a 05 07 84 00 7f 09 00 00 4f ba"),
    ("a5 5a 08 08 05 00 00 00 00 00 00 00 00 06 4b", "a5 5a 05 08 85 00 b8 0a 00 00 df ce"),  # SET_SLEW off
    ("a5 5a 09 09 09 04 00 00 00 00 00 0a 00 00 c3 98",  # SET_TRIGGER window 4 codes, delay 0, pulse 10 us, off
     "a5 5a 05 09 89 00 fb 0b 00 00 2d bf"),
    ("a5 5a 02 0a 08 c8 00 78 0b", "a5 5a 05 0a 88 00 f3 0c 00 00 5c 22"),  # SET_WATCHDOG 200 ms
]
CLOSE_FROM_0D = [
    ("a5 5a 00 0d 06 06 da", "a5 5a 05 0d 86 00 20 11 00 00 56 89"),  # PARK
    ("a5 5a 02 0e 08 00 00 74 5e", "a5 5a 05 0e 88 00 18 12 00 00 0d 21"),  # SET_WATCHDOG 0
]
KW = dict(sync_burst=0, watchdog_ms=200)


def test_open_move_read_close_byte_exact(scripted):
    pairs = OPEN + [
        # SET_POSITION x=+1 deg (0x8666), y=-0.5 deg (0x7ccc), no flags: the spec's worked example without trigger
        ("a5 5a 09 0b 02 66 86 00 00 cc 7c 00 00 00 e9 f2", "a5 5a 05 0b 82 00 37 0e 00 00 0a 0b"),
        ("a5 5a 00 0c 03 92 b9",  # READ_STATUS: moving, measured 0x817b/0x7e9e, commanded 0x8666/0x7ccc
         "a5 5a 20 0c 83 00 19 0f 00 00 08 00 00 7b 81 00 00 9e 7e 00 00 66 86 00 00 cc 7c 00 00 00 00 00 00 00 00 00 00 2a 99"),
    ] + CLOSE_FROM_0D
    with scripted(SerialGalvo, pairs, **KW) as g:
        g.move_to(1.0, -0.5)
        st = g.position()
    assert st.commanded_deg == (1.0, -0.5)
    assert st.measured_deg[0] == pytest.approx((0x817B - 32767.5) / 1638.375)
    assert not st.settled and st.faults == ()
    assert st.device_t_ns == 0x0F19 * 1000


def test_host_refuses_out_of_range_without_sending(scripted):
    with scripted(SerialGalvo, OPEN + _close(0x0B), **KW) as g:
        with pytest.raises(LimitError, match="theta_x_deg=15.5 outside limits"):
            g.move_to(15.5, 0.0)


def _close(seq: int):
    from foveate.drivers.galvo_protocol import SET_WATCHDOG, Command, encode_frame, pack_ack
    return [(encode_frame(seq, Command.PARK), encode_frame(seq, 0x86, pack_ack(1))),
            (encode_frame(seq + 1, Command.SET_WATCHDOG, SET_WATCHDOG.pack(0)), encode_frame(seq + 1, 0x88, pack_ack(2)))]


def test_controller_refusal_becomes_limit_error(scripted):
    pairs = OPEN + [
        ("a5 5a 09 0b 02 66 86 00 00 cc 7c 00 00 00 e9 f2",
         "a5 5a 02 0b 82 03 00" + " " + _crc_hex("02 0b 82 03 00")),  # OUT_OF_RANGE on axis x
    ] + _close(0x0C)
    with scripted(SerialGalvo, pairs, **KW) as g:
        with pytest.raises(LimitError, match="OUT_OF_RANGE.*axis x"):
            g.move_to(1.0, -0.5)
        assert g.commanded_deg == (0.0, 0.0)  # a refused move changes nothing


def _crc_hex(body_hex: str) -> str:
    from foveate.drivers.galvo_protocol import crc16
    return crc16(bytes.fromhex(body_hex)).to_bytes(2, "little").hex(" ")


def test_retransmission_keeps_the_sequence_number(scripted):
    """No reply, then the same bytes again (same seq) and the reply: one retry, no error."""
    move = "a5 5a 09 0b 02 66 86 00 00 cc 7c 00 00 00 e9 f2"
    pairs = OPEN + [(move, ""), (move, "a5 5a 05 0b 82 00 37 0e 00 00 0a 0b")] + _close(0x0C)
    with scripted(SerialGalvo, pairs, **KW) as g:
        t0 = g.clock.now_ns()
        g.move_to(1.0, -0.5)
        assert g.link.counters["retries"] == 1 and g.link.counters["timeouts"] == 1
        assert g.clock.now_ns() - t0 == pytest.approx(20e6, rel=0.01)  # one 20 ms timeout, on the manual clock


def test_no_reply_at_all_is_a_clear_timeout_error(scripted):
    move = "a5 5a 09 0b 02 66 86 00 00 cc 7c 00 00 00 e9 f2"
    pairs = OPEN + [(move, "")] * 4 + _close(0x0C)
    with scripted(SerialGalvo, pairs, **KW) as g:
        with pytest.raises(DeviceTimeoutError, match=r"no valid reply to SET_POSITION \(seq 11\) after 4 attempts"):
            g.move_to(1.0, -0.5)


def test_laser_aux_bytes(scripted):
    from foveate.drivers.galvo_protocol import SET_AUX, Command, encode_frame, pack_ack
    ack = lambda seq: encode_frame(seq, Command.SET_AUX | 0x80, pack_ack(seq)).hex(" ")  # noqa: E731
    pairs = [
        IDENTIFY,
        ("a5 5a 04 02 0a 00 00 00 80" + " " + _crc_hex("04 02 0a 00 00 00 80"), ack(2)),  # off, level 0x8000 (0.5) at open
        (encode_frame(3, Command.SET_AUX, SET_AUX.pack(0, 1, 0x8000)).hex(" "), ack(3)),  # on
        (encode_frame(4, Command.SET_AUX, SET_AUX.pack(0, 1, 0xFFFF)).hex(" "), ack(4)),  # full power
        (encode_frame(5, Command.SET_AUX, SET_AUX.pack(0, 0, 0xFFFF)).hex(" "), ack(5)),  # close: off
    ]
    with scripted(SerialLaser, pairs, power_frac=0.5) as laser:
        laser.on()
        laser.set_power(1.0)
    assert not laser.is_on


def test_wrong_protocol_version_is_refused(scripted):
    from foveate.drivers.galvo_protocol import Command, Identity, encode_frame
    reply = encode_frame(1, Command.IDENTIFY | 0x80, Identity(9, (1, 0), 2, 16, 1, 64, 0, 0, "future").pack())
    from foveate.system.clock import ManualClock
    clock = ManualClock()
    g = SerialGalvo("dut", clock, port=scripted.port([(IDENTIFY[0], reply)], clock), **KW)
    with pytest.raises(DeviceError, match="protocol version 9"):
        g.open()
    assert not g.is_open


def test_recorded_spy_trace_replays_byte_for_byte(scripted):
    """A session recorded through spy:// (against the simulated controller on a pty: open, move, read, park,
    close) replays in CI without any port: the driver must send exactly the recorded bytes. Record your own
    controller the same way: port: spy:///dev/ttyACM0?file=session.spy."""
    from pathlib import Path

    pairs = scripted.trace(Path(__file__).parent / "data" / "galvo_session.spy")
    assert len(pairs) == 15 and pairs[0][0] == bytes.fromhex(IDENTIFY[0])  # 10 to open, 3 used, 2 to close
    with scripted(SerialGalvo, pairs, sync_burst=0, watchdog_ms=100) as g:
        g.move_to(1.0, -0.5)
        st = g.position()
        g.park()
    assert st.commanded_deg == (1.0, -0.5)
    assert g.link.counters["retries"] == 0
