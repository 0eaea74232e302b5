"""Time and count windows: origin alignment, exact boundaries across chunks, empty windows."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.system.events import CountWindows, Slicer, TimeWindows, open_events, write_events
from foveate.system.types import EVENT_DTYPE


@pytest.fixture
def stream(tmp_path, make_events):
    ev = make_events(6_000, t_span_us=1_000_000, t0=10_000_037)
    ev = ev[(ev["t"] < 10_300_000) | (ev["t"] >= 10_700_000)]  # a 0.4 s gap: empty windows
    p = tmp_path / "s.raw"
    write_events(p, ev, (640, 480))
    return p, ev


def reference_windows(ev, duration, origin, start=None, end=None):
    t = ev["t"]
    clip = start is not None
    start = int(t[0]) if start is None else start
    last = int(t[-1]) if end is None else end - 1
    k0 = (start - origin) // duration
    k1 = (last - origin) // duration
    out = []
    for k in range(k0, k1 + 1):
        a, b = origin + k * duration, origin + (k + 1) * duration
        lo, hi = max(a, start) if clip else a, b if end is None else min(b, end)
        out.append((lo, hi, ev[(t >= lo) & (t < hi)]))
    return out


@pytest.mark.parametrize("chunk", [1, 333, 1 << 20])
@pytest.mark.parametrize("duration,origin", [(10_000, 0), (7_777, 123), (50_000, -3)])
def test_time_windows_match_reference(stream, chunk, duration, origin):
    p, ev = stream
    sl = TimeWindows(duration, origin_us=origin)
    assert isinstance(sl, Slicer)
    got = list(open_events(p, chunk_events=chunk).windows(sl))
    ref = reference_windows(ev, duration, origin)
    assert [(g.t_start_us, g.t_end_us) for g in got] == [(a, b) for a, b, _ in ref]
    for g, (_, _, e) in zip(got, ref):
        np.testing.assert_array_equal(g.events, e)
    assert any(len(g) == 0 for g in got), "the gap must produce empty windows"
    for a, b in zip(got, got[1:]):
        assert a.t_end_us == b.t_start_us
    assert all((g.t_start_us - origin) % duration == 0 for g in got[1:])


def test_time_windows_explicit_range_is_clipped_and_padded(stream):
    p, ev = stream
    start, end = 10_050_001, 12_000_000  # the end lies past the last event: empty windows until then
    got = list(open_events(p, chunk_events=500).windows(TimeWindows(100_000, origin_us=0, start_us=start, end_us=end)))
    ref = reference_windows(ev, 100_000, 0, start, end)
    assert [(g.t_start_us, g.t_end_us) for g in got] == [(a, b) for a, b, _ in ref]
    assert got[0].t_start_us == start and got[-1].t_end_us == end
    for g, (_, _, e) in zip(got, ref):
        np.testing.assert_array_equal(g.events, e)


def test_time_windows_of_empty_stream(tmp_path):
    p = tmp_path / "e.npy"
    write_events(p, np.zeros(0, EVENT_DTYPE), (8, 8))
    r = open_events(p, sensor_size=(8, 8))
    assert list(r.windows(TimeWindows(10))) == []
    got = list(r.windows(TimeWindows(10, start_us=0, end_us=35)))
    assert [(g.t_start_us, g.t_end_us, len(g)) for g in got] == [(0, 10, 0), (10, 20, 0), (20, 30, 0), (30, 35, 0)]


@pytest.mark.parametrize("chunk", [1, 1000, 1 << 20])
@pytest.mark.parametrize("n", [1, 999, 6_000])
def test_count_windows(stream, chunk, n):
    p, ev = stream
    got = list(open_events(p, chunk_events=chunk).windows(CountWindows(n)))
    assert [len(g) for g in got] == [min(n, len(ev) - i) for i in range(0, len(ev), n)]
    np.testing.assert_array_equal(np.concatenate([g.events for g in got]), ev)
    for g in got:
        assert g.t_start_us == g.events["t"][0] and g.t_end_us == g.events["t"][-1] + 1
    dropped = list(open_events(p, chunk_events=chunk).windows(CountWindows(n, drop_last=True)))
    assert all(len(g) == n for g in dropped)


def test_slicer_arguments_are_checked():
    with pytest.raises(ValueError):
        TimeWindows(0)
    with pytest.raises(ValueError):
        TimeWindows(10, start_us=5, end_us=1)
    with pytest.raises(ValueError):
        CountWindows(0)
    with pytest.raises(Exception):
        TimeWindows(10).duration_us = 5  # frozen
