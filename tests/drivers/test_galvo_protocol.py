"""Galvo protocol pure functions: CRC, frames, resynchronising decoder, payloads, DAC scaling."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foveate.drivers.galvo_protocol import (
    MAX_PAYLOAD,
    SET_POSITION,
    AxisScale,
    Command,
    ControllerStatus,
    ErrorCode,
    Fault,
    FrameDecoder,
    Identity,
    StatusFlag,
    encode_frame,
    fault_names,
    full_scale,
    pack_ack,
    pack_error,
    reply_error,
    unpack_ack,
    unwrap_u32,
    crc16,
)


def crc16_reference(data: bytes) -> int:
    """Bit-by-bit CRC-16/CCITT-FALSE, written from the definition (poly 0x1021, init 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def test_crc_check_value_and_reference():
    assert crc16(b"123456789") == 0x29B1  # the catalogued check value of CRC-16/CCITT-FALSE
    for data in (b"", b"\x00", b"\xa5\x5a\x09\x07\x02", bytes(range(256))):
        assert crc16(data) == crc16_reference(data)


def test_worked_example_from_the_spec():
    # hardware/protocol/galvo_serial.md: SET_POSITION, seq 7, x = +1.0 deg, y = -0.5 deg, fire trigger
    scale = full_scale(16, 20.0)
    assert (scale.to_code(1.0), scale.to_code(-0.5)) == (0x8666, 0x7CCC)
    frame = encode_frame(7, Command.SET_POSITION, SET_POSITION.pack(0x8666, 0x7CCC, 1))
    assert frame == bytes.fromhex("a5 5a 09 07 02 66 86 00 00 cc 7c 00 00 01 01 11")
    assert crc16_reference(frame[2:-2]) == 0x1101
    reply = encode_frame(7, Command.SET_POSITION | 0x80, pack_ack(123456789))
    assert reply == bytes.fromhex("a5 5a 05 07 82 00 15 cd 5b 07 42 5e")
    (f,) = FrameDecoder().feed(reply)
    assert (f.seq, f.cmd, unpack_ack(f.payload)) == (7, 0x82, 123456789)


def test_encode_refuses_bad_fields():
    with pytest.raises(ValueError):
        encode_frame(256, 1)
    with pytest.raises(ValueError):
        encode_frame(0, 1, bytes(MAX_PAYLOAD + 1))


def test_decoder_byte_by_byte_and_needed():
    frame = encode_frame(3, Command.READ_STATUS)
    dec = FrameDecoder()
    assert dec.needed() == 5
    for i, b in enumerate(frame[:-1]):
        assert dec.feed(bytes([b])) == []
        assert dec.needed() >= 1
    assert dec.needed() == 1
    (f,) = dec.feed(frame[-1:])
    assert (f.seq, f.cmd, f.payload) == (3, Command.READ_STATUS, b"")
    assert dec.garbage_bytes == 0 and dec.pending == 0


def test_decoder_resyncs_after_garbage_false_sync_and_bad_crc():
    good = encode_frame(9, 0x83, b"\x00" * 5)
    bad = bytearray(encode_frame(8, 0x82, b"\x01\x02"))
    bad[-1] ^= 0xFF
    junk = b"\x00\xa5\xa5\x5a\x7f\x01" + bytes(bad) + b"\xa5\x5a\x03\x00"  # false syncs, impossible length, bad CRC
    dec = FrameDecoder()
    frames = dec.feed(junk + good)
    assert [f.seq for f in frames] == [9]
    assert dec.crc_errors >= 1 and dec.garbage_bytes > 0
    assert dec.pending == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=12), st.integers(0, 255), st.binary(max_size=MAX_PAYLOAD)), max_size=6),
       st.integers(1, 9))
def test_decoder_finds_every_frame_between_random_garbage(chunks, split):
    """Garbage without the sync marker between valid frames never hides a frame, however the bytes are split."""
    stream, want = b"", []
    for garbage, seq, payload in chunks:
        stream += garbage.replace(b"\xa5", b"\x00") + encode_frame(seq, 0x83, payload)
        want.append((seq, payload))
    dec = FrameDecoder()
    got = []
    for i in range(0, len(stream), split):
        got += [(f.seq, f.payload) for f in dec.feed(stream[i:i + split])]
    assert got == want


def test_payload_round_trips():
    ident = Identity(1, (2, 3), 2, 18, 1, 64, 35, 0xDEADBEEF, "acme XY-2")
    assert Identity.unpack(ident.pack()) == ident
    st_ = ControllerStatus(5, StatusFlag.IN_POSITION | StatusFlag.AUX0_ON, Fault.WATCHDOG, (1, 2), (3, 4), 7, 99)
    assert ControllerStatus.unpack(st_.pack()) == st_
    with pytest.raises(Exception, match="READ_STATUS reply: 3 payload bytes, expected 32"):
        ControllerStatus.unpack(b"\x00\x00\x00")
    assert fault_names(Fault.WATCHDOG | Fault.RX_ERROR) == ("watchdog", "rx_error")


def test_error_replies_name_command_code_and_axis():
    assert reply_error(0x82, pack_ack(1)) is None
    err = reply_error(0x82, pack_error(ErrorCode.OUT_OF_RANGE, 1))
    assert err.code == ErrorCode.OUT_OF_RANGE and err.detail == 1
    assert "SET_POSITION" in str(err) and "OUT_OF_RANGE" in str(err) and "axis y" in str(err)
    assert "unknown error code 0x77" in str(reply_error(0x81, b"\x77\xff"))


def test_axis_scale_refuses_instead_of_clipping():
    s = full_scale(16, 20.0)
    assert s.to_code(-20.0) == 0 and s.to_code(20.0) == 65535
    assert s.to_deg(s.to_code(3.3)) == pytest.approx(3.3, abs=s.deg_per_code / 2)
    with pytest.raises(ValueError, match="outside 0..65535"):
        s.to_code(20.01)
    assert AxisScale(-1000.0, 40000.0, 18).to_code(10.0) == 30000  # mirrored axis, 18-bit DAC
    with pytest.raises(ValueError):
        AxisScale(1.0, 0.0, 12)


def test_unwrap_u32():
    assert unwrap_u32(None, 5) == 5
    assert unwrap_u32(0xFFFFFFF0, 0x10) == 0x100000010
    assert unwrap_u32(0x100000010, 0xFFFFFFF0) == 0xFFFFFFF0
    assert unwrap_u32(10, 4) == 4  # small step back stays a step back
    assert struct.calcsize("<IIB") == SET_POSITION.size == 9
