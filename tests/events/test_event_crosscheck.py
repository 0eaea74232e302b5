"""Cross-checks against independent decoders and encoders (test-only dependencies, skipped when absent).

Oracles per format (see docs/events.md): EVT 3.0 evt3 + evlib (never expelliarmus, which
mis-decodes EVT 3.0 timestamps); EVT 2.0 expelliarmus + evlib + faery; DAT expelliarmus + faery;
AEDAT4 aedat + dv-processing (LZ4 and ZSTD) + faery; DSEC h5py. Files written by the independent tools
decode to exactly the same events with our readers, and files we write are read back exactly
by the independent readers.
"""

from __future__ import annotations

import numpy as np
import pytest

from foveate.system.events import open_events, write_events
from foveate.system.types import EVENT_DTYPE


def ours(path, **kw) -> np.ndarray:
    with open_events(path, **kw) as r:
        return r.read_all()


def same(ev: np.ndarray, x, y, t, p, what: str) -> None:
    assert len(ev) == len(x), f"{what}: {len(ev)} events vs {len(x)}"
    for name, a, b in (("x", ev["x"], x), ("y", ev["y"], y), ("t", ev["t"], t), ("p", ev["p"], p)):
        np.testing.assert_array_equal(np.asarray(a, np.int64), np.asarray(b, np.int64), err_msg=f"{what}: field {name}")


# -- independent readers ------------------------------------------------------------


def evt3_read(path):
    evt3 = pytest.importorskip("evt3")
    e = evt3.decode_file(str(path))
    return np.asarray(e.x), np.asarray(e.y), np.asarray(e.timestamp), np.asarray(e.polarity)


def evlib_read(path):
    evlib = pytest.importorskip("evlib")
    df = evlib.formats.load_events(str(path)).collect()  # native file order (evlib.load_events sorts)
    t = df["t"].dt.total_microseconds().to_numpy()
    return df["x"].to_numpy(), df["y"].to_numpy(), t, (df["polarity"].to_numpy() > 0)


def expel_read(path, enc):
    expelliarmus = pytest.importorskip("expelliarmus")
    a = expelliarmus.Wizard(encoding=enc).read(str(path))
    return a["x"], a["y"], a["t"], a["p"]


def faery_read(path, size):
    faery = pytest.importorskip("faery")
    a = faery.events_stream_from_file(path, dimensions_fallback=size).to_array()
    return a["x"], a["y"], a["t"], a["on"]


def aedat_read(path):
    aedat = pytest.importorskip("aedat")
    parts = [pk["events"] for pk in aedat.Decoder(str(path)) if "events" in pk]
    a = np.concatenate(parts)
    return a["x"], a["y"], a["t"], a["on"]


def dv_read(path):
    dv = pytest.importorskip("dv_processing")
    rec = dv.io.MonoCameraRecording(str(path))
    parts = []
    while True:
        b = rec.getNextEventBatch()
        if b is None:
            break
        parts.append(b.numpy())
    a = np.concatenate(parts)
    return a["x"], a["y"], a["timestamp"], a["polarity"]


# -- independent writers --------------------------------------------------------------


def faery_write(path, ev, size, version=None):
    faery = pytest.importorskip("faery")
    fa = np.zeros(len(ev), faery.EVENTS_DTYPE)
    fa["t"], fa["x"], fa["y"], fa["on"] = ev["t"], ev["x"], ev["y"], ev["p"] == 1
    kw = {} if version is None else {"version": version, "zero_t0": False}
    faery.events_stream_from_array(fa, size).to_file(str(path), **kw)


def expel_write(path, ev, enc):
    expelliarmus = pytest.importorskip("expelliarmus")
    a = np.zeros(len(ev), [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    for k in "txyp":
        a[k] = ev[k]
    expelliarmus.Wizard(encoding=enc).save(str(path), a)


def dv_write(path, ev, size, compression):
    dv = pytest.importorskip("dv_processing")
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer_test", size, getattr(dv.CompressionType, compression))
    w = dv.io.MonoCameraWriter(str(path), cfg)
    store = dv.EventStore()
    for e in ev:
        store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
    w.writeEvents(store)
    del w  # the file is finalised (data table written) when the writer is destroyed
    import gc

    gc.collect()


# -- real recordings --------------------------------------------------------------------------


def test_real_evt3_matches_evt3_and_evlib(real_evt3):
    ev = ours(real_evt3)
    assert len(ev) == 219_596
    assert int(ev["t"][-1] - ev["t"][0]) == 8_801  # not expelliarmus's 53 857 µs
    same(ev, *evt3_read(real_evt3), "evt3 package")
    same(ev, *evlib_read(real_evt3), "evlib")


def test_real_evt2_matches_expelliarmus_evlib_faery(real_evt2):
    ev = ours(real_evt2)
    assert len(ev) == 539_481
    same(ev, *expel_read(real_evt2, "evt2"), "expelliarmus")
    same(ev, *evlib_read(real_evt2), "evlib")
    same(ev, *faery_read(real_evt2, (640, 480)), "faery")


# -- files written by independent tools ----------------------------------------------------------


@pytest.fixture(scope="module")
def real_like(request):
    """The real EVT 3.0 recording's events (a realistic stream), else synthetic ones."""
    from pathlib import Path

    p = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "events" / "real" / "evt3_sample.raw"
    if p.exists():
        return ours(p)[:60_000], (1280, 720)
    rng = np.random.default_rng(5)
    ev = np.zeros(60_000, EVENT_DTYPE)
    ev["t"] = np.sort(rng.integers(0, 50_000, 60_000))
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 1280, 60_000), rng.integers(0, 720, 60_000), rng.integers(0, 2, 60_000)
    return ev, (1280, 720)


def test_faery_evt3_decodes_like_evt3(tmp_path, real_like):
    ev, size = real_like
    p = tmp_path / "faery3.raw"
    faery_write(p, ev, size, "evt3")
    got = ours(p)
    np.testing.assert_array_equal(got, ev)
    same(got, *evt3_read(p), "evt3 package on faery's file")


def test_faery_evt3_with_t0_header(tmp_path, real_like):
    ev, size = real_like
    p = tmp_path / "faery3_t0.raw"
    faery_write(p, ev, size)  # default zero_t0=True: t0 goes to the '% t0' header
    np.testing.assert_array_equal(ours(p), ev)


@pytest.mark.parametrize("writer", ["faery", "expelliarmus"])
def test_independent_evt2_files(tmp_path, real_like, writer):
    ev, size = real_like
    p = tmp_path / f"{writer}2.raw"
    if writer == "faery":
        faery_write(p, ev, size, "evt2")
        got = ours(p)
    else:
        expel_write(p, ev, "evt2")
        got = ours(p, sensor_size=size)  # expelliarmus writes no geometry
    np.testing.assert_array_equal(got, ev)


@pytest.mark.parametrize("writer", ["faery", "expelliarmus"])
def test_independent_dat_files(tmp_path, real_like, writer):
    ev, size = real_like
    p = tmp_path / f"{writer}.dat"
    if writer == "faery":
        faery_write(p, ev, size, "dat2")
        got = ours(p)
    else:
        expel_write(p, ev, "dat")
        got = ours(p, sensor_size=size)
    np.testing.assert_array_equal(got, ev)


@pytest.mark.parametrize("compression", ["LZ4", "ZSTD"])
def test_dv_processing_aedat4(tmp_path, make_events, compression):
    ev = make_events(3_000, size=(346, 260), t_span_us=200_000, t0=1_700_000_000_000_000)
    p = tmp_path / f"dv_{compression}.aedat4"
    dv_write(p, ev, (346, 260), compression)
    with open_events(p) as r:
        assert r.format == "aedat4" and r.compression == compression.lower()
        assert r.sensor_size == (346, 260)
        got = r.read_all()
        assert r.n_events == len(ev) and r.t_range == (int(ev["t"][0]), int(ev["t"][-1]))
        mid = int(ev["t"][1500])
        np.testing.assert_array_equal(r.read_time(mid, mid + 50_000), ev[(ev["t"] >= mid) & (ev["t"] < mid + 50_000)])
    np.testing.assert_array_equal(got, ev)
    same(got, *aedat_read(p), "aedat")
    same(got, *dv_read(p), "dv-processing")


def test_faery_aedat4(tmp_path, real_like):
    ev, size = real_like
    p = tmp_path / "faery.aedat4"
    faery_write(p, ev, size)
    got = ours(p)
    np.testing.assert_array_equal(got, ev)
    same(got, *aedat_read(p), "aedat")


def test_h5py_written_dsec_file(tmp_path, make_events):
    h5py = pytest.importorskip("h5py")
    hdf5plugin = pytest.importorskip("hdf5plugin")
    ev = make_events(50_000, t_span_us=3_000_000)
    t_offset = 47_000_123
    p = tmp_path / "events.h5"
    with h5py.File(p, "w") as f:
        comp = hdf5plugin.Blosc(cname="zstd", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)
        for k, dt in (("x", "<u2"), ("y", "<u2"), ("t", "<u4"), ("p", "u1")):
            f.create_dataset(f"events/{k}", data=ev[k].astype(dt), chunks=(4096,), **comp)
        f.create_dataset("t_offset", data=np.int64(t_offset))
        ms = np.searchsorted(ev["t"], np.arange(int(ev["t"][-1]) // 1000 + 1) * 1000)
        f.create_dataset("ms_to_idx", data=ms.astype("<u8"))
    with open_events(p) as r:
        assert r.format == "dsec" and r.sensor_size == (640, 480)
        got = r.read_all()
        expect = ev.copy()
        expect["t"] += t_offset
        np.testing.assert_array_equal(got, expect)
        a = t_offset + 1_234_567
        np.testing.assert_array_equal(r.read_time(a, a + 100_000), expect[(expect["t"] >= a) & (expect["t"] < a + 100_000)])
    with open_events(p, add_t_offset=False) as r:
        np.testing.assert_array_equal(r.read_all(), ev)


# -- files we write, read by independent readers -------------------------------------------------


def test_our_evt3_is_read_exactly_by_evt3_and_evlib(tmp_path, real_like):
    ev, size = real_like
    ev = ev.copy()
    ev["t"] += np.arange(len(ev)) * 700  # spans 42 s: several 24-bit wraps
    p = tmp_path / "ours3.raw"
    write_events(p, ev, size)
    same(ev, *evt3_read(p), "evt3 package")
    same(ev, *evlib_read(p), "evlib")
    x, y, t, pol = faery_read(p, size)
    same(ev, x, y, t, pol, "faery")


def test_our_evt2_is_read_exactly_by_expelliarmus_evlib_faery(tmp_path, real_like):
    ev, size = real_like
    p = tmp_path / "ours2.raw"
    write_events(p, ev, size, format="evt2")
    same(ev, *expel_read(p, "evt2"), "expelliarmus")
    same(ev, *evlib_read(p), "evlib")
    same(ev, *faery_read(p, size), "faery")


def test_our_dat_is_read_exactly_by_expelliarmus_and_faery(tmp_path, real_like):
    ev, size = real_like
    p = tmp_path / "ours.dat"
    write_events(p, ev, size)
    same(ev, *expel_read(p, "dat"), "expelliarmus")
    same(ev, *faery_read(p, size), "faery")


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_our_aedat4_is_read_exactly_by_aedat_dv_processing_faery(tmp_path, real_like, compression):
    ev, size = real_like
    ev = ev.copy()
    ev["t"] += 1_700_000_000_000_000  # Unix µs, as cameras stamp them
    p = tmp_path / f"ours_{compression}.aedat4"
    write_events(p, ev, size, compression=compression, packet_events=5_000)
    same(ev, *aedat_read(p), "aedat")
    same(ev, *dv_read(p), "dv-processing")
    same(ev, *faery_read(p, size), "faery")


@pytest.mark.parametrize("fmt,name", [("dsec", "ours.h5"), ("foveate", "ours.fev.h5")])
def test_our_h5_is_read_by_h5py_as_dsec(tmp_path, make_events, fmt, name):
    h5py = pytest.importorskip("h5py")
    ev = make_events(20_000, t0=5_000_321)
    p = tmp_path / name
    write_events(p, ev, (640, 480), format=fmt)
    with h5py.File(p, "r") as f:
        t = f["events/t"][:].astype(np.int64) + int(f["t_offset"][()])
        same(ev, f["events/x"][:], f["events/y"][:], t, f["events/p"][:], "h5py")
        ms = f["ms_to_idx"][:]
        rel = f["events/t"][:].astype(np.int64)
        # the DSEC definition: t[ms_to_idx[ms]] >= ms*1000 > t[ms_to_idx[ms] - 1]
        np.testing.assert_array_equal(ms, np.searchsorted(rel, np.arange(len(ms)) * 1000, side="left"))
