"""Every writable format reads back exactly; chunking never changes what is decoded."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.system.events import FORMATS, TRIGGER_DTYPE, create_writer, detect_format, open_events, write_events
from foveate.system.types import EVENT_DTYPE

WRITABLE = [name for name, f in FORMATS.items() if f.writer]
NAMES = {"aedat4": "h.aedat4", "evt3": "a.raw", "evt2": "b.raw", "dat": "c.dat", "dsec": "d.h5", "foveate": "e.fev.h5", "ess": "f_ess",
         "npy": "g.npy"}


@pytest.mark.parametrize("fmt", WRITABLE)
def test_write_then_read_is_exact(tmp_path, make_events, fmt):
    ev = make_events(30_000, size=(346, 260), t_span_us=3_000_000, t0=1_000_123)
    path = tmp_path / NAMES[fmt]
    write_events(path, [ev[:7], ev[7:12345], ev[12345:]], (346, 260), format=fmt)
    assert detect_format(path) == fmt
    with open_events(path) as r:
        assert r.format == fmt
        assert r.sensor_size == (346, 260)
        got = r.read_all()
    np.testing.assert_array_equal(got, ev)


@pytest.mark.parametrize("fmt", WRITABLE)
@pytest.mark.parametrize("chunk", [1, 97, 4096])
def test_chunk_size_does_not_change_events(tmp_path, make_events, fmt, chunk):
    ev = make_events(5_000, size=(346, 260), seed=3)
    path = tmp_path / NAMES[fmt]
    write_events(path, ev, (346, 260), format=fmt)
    with open_events(path, chunk_events=chunk) as r:
        parts = list(r.chunks())
    assert max(len(p) for p in parts) <= chunk + 12
    np.testing.assert_array_equal(np.concatenate(parts), ev)


def test_long_gaps_and_wraps_round_trip(tmp_path):
    """Gaps longer than the EVT 3.0 24-bit (16.8 s) and DAT 32-bit (71.6 min) time bases decode monotonically."""
    t = np.array([5, 16_777_215, 16_777_216, 16_777_217, 40_000_000, 100_000_000, 2_000_000_000, 4_100_000_000,
                  6_000_000_000, 6_000_000_001], np.int64)
    ev = np.zeros(len(t), EVENT_DTYPE)
    ev["t"] = t
    ev["x"] = np.arange(len(t))
    for fmt, name in (("evt3", "w.raw"), ("evt2", "w2.raw"), ("dat", "w.dat"), ("foveate", "w.fev.h5")):
        p = tmp_path / name
        write_events(p, ev, (64, 64), format=fmt)
        got = open_events(p).read_all()
        np.testing.assert_array_equal(got["t"], t, err_msg=fmt)


def test_dat_refuses_gaps_its_32_bit_time_cannot_carry(tmp_path):
    from foveate.system.errors import EventFormatError

    ev = np.zeros(2, EVENT_DTYPE)
    ev["t"] = [0, 1 << 31]
    with pytest.raises(EventFormatError, match="event 1"):
        write_events(tmp_path / "g.dat", ev, (8, 8))


def test_empty_file_round_trip(tmp_path):
    for fmt in WRITABLE:
        p = tmp_path / NAMES[fmt]
        with create_writer(p, (32, 16), format=fmt):
            pass
        with open_events(p, format=fmt, sensor_size=(32, 16)) as r:
            assert len(r.read_all()) == 0


def test_writer_refuses_unsorted_and_outside(tmp_path, make_events):
    from foveate.system.errors import EventFormatError

    ev = make_events(100)
    bad = ev.copy()
    bad["t"][50] = bad["t"][49] - 10
    with pytest.raises(EventFormatError, match="event 50 goes back in time"):
        write_events(tmp_path / "x.raw", bad, (640, 480))
    with pytest.raises(EventFormatError, match=r"outside the 100x100 sensor"):
        write_events(tmp_path / "y.raw", ev, (100, 100))
    # npy keeps file order: unsorted is fine there
    write_events(tmp_path / "z.npy", bad, (640, 480))
    np.testing.assert_array_equal(open_events(tmp_path / "z.npy").read_all(), bad)


def test_foveate_h5_stores_triggers(tmp_path, make_events):
    ev = make_events(100)
    trig = np.zeros(3, TRIGGER_DTYPE)
    trig["t"] = [10, 20, 30]
    trig["value"] = [1, 0, 1]
    with create_writer(tmp_path / "t.fev.h5", (640, 480)) as w:
        w.write(ev)
        w.write_triggers(trig)
    np.testing.assert_array_equal(open_events(tmp_path / "t.fev.h5").triggers(), trig)


@pytest.mark.parametrize("fmt", ["dsec", "foveate", "ess", "npy"])
def test_random_access_by_time_matches_scan(tmp_path, make_events, fmt):
    ev = make_events(20_000, t_span_us=5_000_000, t0=123_456_789)
    path = tmp_path / NAMES[fmt]
    write_events(path, ev, (640, 480), format=fmt)
    with open_events(path, sensor_size=(640, 480)) as r:
        assert r.indexed
        assert r.n_events == len(ev)
        assert r.t_range == (int(ev["t"][0]), int(ev["t"][-1]))
        for a, b in ((0, 10**12), (123_456_789, 123_456_790), (124_000_000, 125_500_000), (int(ev["t"][777]), int(ev["t"][777]) + 1)):
            sel = ev[(ev["t"] >= a) & (ev["t"] < b)]
            np.testing.assert_array_equal(r.read_time(a, b), sel)


def test_read_time_scans_unindexed_formats(tmp_path, make_events):
    ev = make_events(5000)
    write_events(tmp_path / "a.raw", ev, (640, 480))
    with open_events(tmp_path / "a.raw") as r:
        assert not r.indexed
        np.testing.assert_array_equal(r.read_time(100_000, 900_000), ev[(ev["t"] >= 100_000) & (ev["t"] < 900_000)])
