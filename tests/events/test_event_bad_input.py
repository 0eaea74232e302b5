"""Bad input: a clear EventFormatError naming file and byte offset / event index, or a documented repair."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foveate.system.errors import EventFormatError
from foveate.system.events import EventFormatWarning, TimeWindows, open_events, write_events
from foveate.system.types import EVENT_DTYPE

HEADER3 = b"% evt 3.0\n% format EVT3;height=64;width=64\n% end\n"
HEADER2 = b"% evt 2.0\n% geometry 64x64\n"
HEADER_DAT = b"% Data file containing CD events.\n% Version 2\n% Width 64\n% Height 64\n" + bytes([12, 8])


def small(n=50, size=(64, 64)):
    ev = np.zeros(n, EVENT_DTYPE)
    ev["t"] = np.arange(n) * 10 + 100
    ev["x"] = np.arange(n) % size[0]
    ev["y"] = (np.arange(n) * 7) % size[1]
    ev["p"] = np.arange(n) % 2
    return ev


@pytest.mark.parametrize("fmt,name,unit", [("evt3", "a.raw", 2), ("evt2", "b.raw", 4), ("dat", "c.dat", 8)])
def test_truncated_file_names_byte_offset_or_repairs(tmp_path, fmt, name, unit):
    p = tmp_path / name
    write_events(p, small(), (64, 64), format=fmt)
    full = open_events(p).read_all()
    data = p.read_bytes()
    p.write_bytes(data[:-1])  # a partial last word/record
    cut = len(data) - unit
    with pytest.raises(EventFormatError, match=rf"{name}: byte offset {cut}: file is truncated"):
        open_events(p).read_all()
    with pytest.warns(EventFormatWarning, match=f"truncated at byte offset {cut}"):
        r = open_events(p, repair=True)
        got = r.read_all()
    assert r.stats.truncated_bytes == unit - 1
    assert len(got) >= len(full) - 1
    np.testing.assert_array_equal(got, full[: len(got)])


def test_truncated_aedat4_packet(tmp_path):
    dv = pytest.importorskip("dv_processing")
    p = tmp_path / "t.aedat4"
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("cam", (64, 64), dv.CompressionType.LZ4)
    w = dv.io.MonoCameraWriter(str(p), cfg)
    for k in range(3):
        store = dv.EventStore()
        for i in range(100):
            store.push_back(1000 + k * 1000 + i, i % 64, k, True)
        w.writeEvents(store)
    del w
    import gc

    gc.collect()
    full = open_events(p).read_all()
    assert len(full) == 300
    data = p.read_bytes()
    q = tmp_path / "cut.aedat4"
    q.write_bytes(data[: len(data) // 2])
    with pytest.raises(EventFormatError, match=r"cut.aedat4: byte offset \d+: file is truncated"):
        open_events(q).read_all()
    with pytest.warns(EventFormatWarning):
        got = open_events(q, repair=True).read_all()
    np.testing.assert_array_equal(got, full[: len(got)])


@pytest.mark.parametrize(
    "content,match",
    [
        (b"% evt 3.0\n% geometry 12xab\n% end\n", r"bad.raw: header: % geometry: sensor size '12xab' is not two integers"),
        (b"% evt 3.0\n% geometry twelve\n% end\n", r"bad.raw: header: '% geometry twelve' is not WIDTHxHEIGHT"),
        (b"% evt 3.0\n% format EVT3;width=abc;height=5\n% end\n", r"bad.raw: header: % format: sensor size 'abcx5'"),
        (b"%\xff\xfe binary\n", r"bad.raw: byte offset 0: corrupt header"),
        (b"% evt 3.0 and no end of line", r"bad.raw: byte offset 0: file ends inside the '%' header"),
        (b"% evt 2.1\n", r"bad.raw: header declares EVT 2.1, which is not supported"),
        (b"% plugin_name something\n\x00\x80", r"bad.raw: the '%' header names no EVT version"),
    ],
)
def test_corrupt_headers(tmp_path, content, match):
    p = tmp_path / "bad.raw"
    p.write_bytes(content)
    with pytest.raises(EventFormatError, match=match):
        open_events(p).read_all()


def test_unknown_and_mismatched_formats(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"\x01\x02garbage" * 10)
    with pytest.raises(EventFormatError, match=r"x.bin: unknown event file format .*readable formats: evt3, evt2"):
        open_events(p)
    raw = tmp_path / "noheader.raw"
    raw.write_bytes(np.array([0x8001, 0x6002, 0x0003, 0x2004], "<u2").tobytes())
    with pytest.raises(EventFormatError, match="without a '%' header; pass format="):
        open_events(raw)
    ev = open_events(raw, format="evt3", sensor_size=(16, 16)).read_all()
    assert ev.tolist() == [(4, 3, 4098, 0)]
    with pytest.raises(EventFormatError, match="unknown event format 'evt9'"):
        open_events(raw, format="evt9")
    h3 = tmp_path / "h3.raw"
    h3.write_bytes(HEADER3)
    with pytest.raises(EventFormatError, match="declares EVT 3.0, opened as EVT 2.0"):
        open_events(h3, format="evt2")
    with pytest.raises(EventFormatError, match="no such file"):
        open_events(tmp_path / "missing.raw")
    aedat2 = tmp_path / "old.aedat"
    aedat2.write_bytes(b"#!AER-DAT2.0\r\n")
    with pytest.raises(EventFormatError, match="AEDAT version 2.0 is not supported"):
        open_events(aedat2)


def test_outside_sensor_names_event_index(tmp_path):
    p = tmp_path / "o.raw"
    words = [0x8001, 0x6000, 0x0005, 0x2003, 0x2000 | 100, 0x2004]  # the second event has x=100 on a 64x64 sensor
    p.write_bytes(HEADER3 + np.array(words, "<u2").tobytes())
    with pytest.raises(EventFormatError, match=r"o.raw: event 1: x=100, y=5 lies outside the 64x64 sensor"):
        open_events(p).read_all()
    with pytest.warns(EventFormatWarning, match="dropping events outside the sensor"):
        r = open_events(p, repair=True)
        ev = r.read_all()
    assert ev["x"].tolist() == [3, 4] and r.stats.repaired_events == 1


def test_non_monotonic_timestamps(tmp_path):
    ev = small(100)
    ev["t"][60:] -= 50  # a small step back: within the reordering tolerance, sorted into place
    p = tmp_path / "small.npy"
    write_events(p, ev, (64, 64))
    packets = list(open_events(p, sensor_size=(64, 64)).windows(TimeWindows(100)))
    got = np.concatenate([q.events for q in packets])
    np.testing.assert_array_equal(got, ev[np.argsort(ev["t"], kind="stable")])

    ev = small(100)
    ev["t"][70:] -= 5_000  # far back in time
    p = tmp_path / "big.npy"
    write_events(p, ev, (64, 64))
    with pytest.raises(EventFormatError, match=r"big.npy: event 70: timestamp -4\d+ µs goes back in time"):
        list(open_events(p, sensor_size=(64, 64), chunk_events=16).windows(TimeWindows(100)))
    with pytest.warns(EventFormatWarning, match="dropping late events"):
        r = open_events(p, sensor_size=(64, 64), repair=True, chunk_events=16)
        got = np.concatenate([q.events for q in r.windows(TimeWindows(100))])
    assert np.all(np.diff(got["t"]) >= 0)
    assert r.stats.repaired_events > 0


def test_aedat4_corruptions(tmp_path):
    p = tmp_path / "m.aedat4"
    p.write_bytes(b"#!AER-DAT4.0\r\n" + (10_000).to_bytes(4, "little") + b"\x00" * 16)
    with pytest.raises(EventFormatError, match=r"m.aedat4: byte offset 14: header length 10000 does not fit"):
        open_events(p)
    p.write_bytes(b"#!AER-DAT4.0\r\n" + (8).to_bytes(4, "little") + b"\x08\x00\x00\x00XXXX")
    with pytest.raises(EventFormatError, match="identifier b'XXXX', expected b'IOHE'"):
        open_events(p)


def test_h5_and_ess_layout_errors(tmp_path):
    import h5py

    p = tmp_path / "e.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("events/x", data=np.zeros(3, "<u2"))
        f.create_dataset("events/y", data=np.zeros(3, "<u2"))
    with pytest.raises(EventFormatError, match=r"e.h5: HDF5: missing dataset\(s\) /events/t, /events/p"):
        open_events(p)
    d = tmp_path / "ess"
    d.mkdir()
    np.zeros(4, "<i8").tofile(d / "events.dat.t")
    np.zeros((3, 3), "<i2").tofile(d / "events.dat.xyp")
    with pytest.raises(EventFormatError, match="3 xyp rows but 4 timestamps"):
        open_events(d)


# -- fuzzing: any bytes after a valid header decode or fail cleanly, never crash or hang ------------

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _decode_or_clean_error(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EventFormatWarning)
        try:
            r = open_events(path, **kw)
            ev = r.read_all()
            r.triggers()
            list(r.windows(TimeWindows(1000)))
        except EventFormatError as exc:
            assert str(path.name) in str(exc)
            return None
    assert ev.dtype == EVENT_DTYPE
    if len(ev):
        w, h = r.sensor_size
        assert int(ev["x"].max()) < w and int(ev["y"].max()) < h and int(ev["p"].max()) <= 1
    return ev


@FUZZ
@given(body=st.binary(max_size=2048), repair=st.booleans())
def test_fuzz_evt3(tmp_path, body, repair):
    p = tmp_path / "f.raw"
    p.write_bytes(HEADER3 + body)
    _decode_or_clean_error(p, repair=repair)


@FUZZ
@given(words=st.lists(st.integers(0, 0xFFFF), max_size=600), repair=st.booleans())
def test_fuzz_evt3_words(tmp_path, words, repair):
    """Word-level fuzz reaches every word type (random bytes rarely form valid vectors)."""
    p = tmp_path / "fw.raw"
    p.write_bytes(b"% evt 3.0\n% geometry 2048x2048\n" + np.array(words, "<u2").tobytes())
    ev = _decode_or_clean_error(p, repair=repair)
    assert ev is not None  # every word sequence is decodable on a full-range sensor


@FUZZ
@given(body=st.binary(max_size=2048), repair=st.booleans())
def test_fuzz_evt2(tmp_path, body, repair):
    p = tmp_path / "f2.raw"
    p.write_bytes(HEADER2 + body)
    _decode_or_clean_error(p, repair=repair)


@FUZZ
@given(body=st.binary(max_size=2048), repair=st.booleans())
def test_fuzz_dat(tmp_path, body, repair):
    p = tmp_path / "f.dat"
    p.write_bytes(HEADER_DAT + body)
    _decode_or_clean_error(p, repair=repair)


@pytest.fixture(scope="module")
def aedat_bytes(tmp_path_factory):
    faery = pytest.importorskip("faery")
    ev = small(400)
    fa = np.zeros(len(ev), faery.EVENTS_DTYPE)
    fa["t"], fa["x"], fa["y"], fa["on"] = ev["t"], ev["x"], ev["y"], ev["p"] == 1
    p = tmp_path_factory.mktemp("aedat") / "ok.aedat4"
    faery.events_stream_from_array(fa, (64, 64)).to_file(str(p))
    return p.read_bytes()


@FUZZ
@given(data=st.data(), repair=st.booleans())
def test_fuzz_aedat4_mutations(tmp_path, aedat_bytes, data, repair):
    buf = bytearray(aedat_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(buf) // 2, len(buf)))
    p = tmp_path / "m.aedat4"
    p.write_bytes(bytes(buf[:cut]))
    _decode_or_clean_error(p, repair=repair)


@FUZZ
@given(head=st.binary(min_size=0, max_size=64))
def test_fuzz_sniffing(tmp_path, head):
    p = tmp_path / "s.bin"
    p.write_bytes(head)
    _decode_or_clean_error(p)
