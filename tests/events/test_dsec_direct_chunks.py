"""DSEC reader: Blosc chunks decompressed outside HDF5 (``system/events/_blosc.py``) on one or two threads.

The direct path must give exactly what HDF5 gives, for any range and chunking, fall back to HDF5 for
what it does not handle (other filters, chunks of different lengths per field), and report corrupt
chunks as ``EventFormatError``.
"""

from __future__ import annotations

import numpy as np
import pytest

from foveate.system.errors import EventFormatError
from foveate.system.events import open_events
from foveate.system.events._blosc import BloscField

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")

T_OFFSET_US = 5_000_000


def _write(path, ev, chunks=(4096, 4096, 4096, 4096), comp=None):
    comp = comp if comp is not None else hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.SHUFFLE)
    with h5py.File(path, "w") as f:
        for (k, dt), c in zip((("x", "<u2"), ("y", "<u2"), ("t", "<u4"), ("p", "u1")), chunks):
            f.create_dataset(f"events/{k}", data=ev[k].astype(dt), chunks=(c,), **comp)
        f.create_dataset("t_offset", data=np.int64(T_OFFSET_US))
        ms = np.searchsorted(ev["t"], np.arange(int(ev["t"][-1]) // 1000 + 1) * 1000)
        f.create_dataset("ms_to_idx", data=ms.astype("<u8"))
    return path


def _expected(ev):
    e = ev.copy()
    e["t"] += T_OFFSET_US
    return e


def test_blosc_field_reads_what_hdf5_reads(tmp_path, make_events):
    ev = make_events(30_001)
    p = _write(tmp_path / "e.h5", ev)
    with h5py.File(p, "r") as f:
        d = f["events/t"]
        assert BloscField.usable(d)
        field = BloscField(d)
        dest = np.empty(20_000 + field.chunk, d.dtype)
        scratch = np.empty(field.chunk, d.dtype)
        for a, b in ((0, 4096), (0, 20_000), (1, 2), (4095, 4097), (10_000, 30_001), (30_000, 30_001)):
            assert field.read_into(dest, a, b, scratch)
            np.testing.assert_array_equal(dest[: b - a], d[a:b])


@pytest.mark.parametrize("threads", [1, 2])
def test_ranges_and_chunks_equal_the_events(tmp_path, make_events, threads, monkeypatch):
    import foveate.system.events.hdf5 as h5mod

    monkeypatch.setattr(h5mod, "READ_BLOCK", 5000)  # several units per read, units not chunk multiples
    ev = make_events(40_000)
    p = _write(tmp_path / "e.h5", ev)
    exp = _expected(ev)
    with open_events(p, threads=threads) as r:
        assert r.threads == threads
        np.testing.assert_array_equal(r.read_all(), exp)
        for i0, i1 in ((0, 1), (4095, 4097), (123, 39_999), (8192, 16_384), (39_999, 40_000)):
            np.testing.assert_array_equal(r._read(i0, i1), exp[i0:i1])
        np.testing.assert_array_equal(np.concatenate(list(r.chunks())), exp)
    with open_events(p, threads=threads, chunk_events=777) as r:
        np.testing.assert_array_equal(np.concatenate(list(r.chunks())), exp)


def test_fields_with_different_chunk_lengths(tmp_path, make_events):
    ev = make_events(25_000)
    p = _write(tmp_path / "e.h5", ev, chunks=(4096, 3000, 1024, 8192))
    with open_events(p, threads=2) as r:
        np.testing.assert_array_equal(r.read_all(), _expected(ev))
        np.testing.assert_array_equal(r._read(2999, 9001), _expected(ev)[2999:9001])


def test_other_filters_go_through_hdf5(tmp_path, make_events):
    ev = make_events(10_000)
    p = _write(tmp_path / "g.h5", ev, comp={"compression": "gzip", "shuffle": True})
    with h5py.File(p, "r") as f:
        assert not BloscField.usable(f["events/x"])
    with open_events(p, threads=2) as r:
        np.testing.assert_array_equal(r.read_all(), _expected(ev))


def test_bad_values_found_at_their_index_across_units(tmp_path, make_events, monkeypatch):
    import foveate.system.events.hdf5 as h5mod

    monkeypatch.setattr(h5mod, "READ_BLOCK", 4096)
    ev = make_events(20_000)
    ev["p"][13_000] = 3
    ev["p"][17_000] = 5
    p = _write(tmp_path / "e.h5", ev)
    with open_events(p, threads=2) as r, pytest.raises(EventFormatError, match=r"e.h5: event 13000: polarity 3"):
        r.read_all()
    ev["p"][[13_000, 17_000]] = 1
    ev["x"][9_000] = 700
    p = _write(tmp_path / "e.h5", ev)
    with open_events(p, threads=2) as r, pytest.raises(EventFormatError, match=r"event 9000: x=700, y=\d+ lies outside"):
        r.read_all()


def test_corrupt_chunk_is_an_event_format_error(tmp_path, make_events):
    ev = make_events(20_000)
    p = _write(tmp_path / "e.h5", ev)
    with h5py.File(p, "r+") as f:
        f["events/y"].id.write_direct_chunk((8192,), b"\x02\x01\x91\x02" + b"\xff" * 60)
    with open_events(p, threads=2) as r:
        with pytest.raises(EventFormatError, match=r"e.h5: events \d+\.\.\d+: HDF5 read failed"):
            r.read_all()
        # the chunks before the damaged one still read
        np.testing.assert_array_equal(r._read(0, 8192), _expected(ev)[:8192])


def test_unwritten_chunks_read_as_hdf5_fill_values(tmp_path, make_events):
    ev = make_events(12_000)
    p = tmp_path / "e.h5"
    comp = hdf5plugin.Blosc(cname="zstd", clevel=3, shuffle=hdf5plugin.Blosc.SHUFFLE)
    with h5py.File(p, "w") as f:
        for k, dt in (("x", "<u2"), ("y", "<u2"), ("t", "<u4"), ("p", "u1")):
            d = f.create_dataset(f"events/{k}", shape=(12_000,), chunks=(4096,), dtype=dt, **comp)
            if k != "t":
                d[:] = ev[k]
            else:  # the middle chunk of t never written: HDF5 reads its fill value, 0
                d[:4096], d[8192:] = ev[k][:4096], ev[k][8192:]
        f.create_dataset("t_offset", data=np.int64(0))
    exp = ev.copy()
    exp["t"][4096:8192] = 0
    with open_events(p, threads=2) as r:
        np.testing.assert_array_equal(r.read_all(), exp)


def test_threads_must_be_positive(tmp_path, make_events):
    p = _write(tmp_path / "e.h5", make_events(5000))
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        open_events(p, threads=0)
