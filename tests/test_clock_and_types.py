import numpy as np
import pytest

from foveate.system.clock import ManualClock, MonotonicClock
from foveate.system.types import EVENT_DTYPE, EventPacket, make_events


def test_manual_clock_advances_only_when_told():
    c = ManualClock(start_ns=10)
    assert c.now_ns() == 10
    c.sleep_ns(5)
    assert c.now_ns() == 15
    c.sleep_until_ns(12)  # in the past: no change
    assert c.now_ns() == 15
    c.advance_ns(1_000)
    assert c.now_us() == 1
    with pytest.raises(ValueError):
        c.advance_ns(-1)


def test_monotonic_clock_sleeps_at_least_requested():
    c = MonotonicClock()
    t0 = c.now_ns()
    c.sleep_ns(2_000_000)
    assert c.now_ns() - t0 >= 2_000_000


def test_event_dtype_layout():
    assert EVENT_DTYPE.names == ("x", "y", "t", "p")
    assert [EVENT_DTYPE[n].str for n in EVENT_DTYPE.names] == ["<u2", "<u2", "<i8", "|u1"]


def test_packet_half_open_range_and_slicing():
    ev = make_events([1, 2, 3, 4], [0, 0, 0, 0], [10, 20, 30, 40], [1, 0, 1, 0])
    p = EventPacket(ev, (8, 8), 10, 41)
    s = p.slice_time(20, 40)
    assert list(s.events["t"]) == [20, 30]  # 40 excluded: half-open
    assert (s.t_start_us, s.t_end_us) == (20, 40)
    with pytest.raises(ValueError):
        EventPacket(ev, (8, 8), 10, 40)  # event at t=40 not < t_end
    with pytest.raises(TypeError):
        EventPacket(np.zeros(1, dtype=[("x", "<i4")]), (8, 8), 0, 1)


def test_packet_concatenate_requires_contiguity():
    ev = make_events([1], [1], [5], [1])
    a = EventPacket(ev, (8, 8), 0, 10)
    b = EventPacket(make_events([2], [2], [12], [0]), (8, 8), 10, 20)
    joined = EventPacket.concatenate([a, b])
    assert len(joined) == 2 and joined.t_end_us == 20
    with pytest.raises(ValueError):
        EventPacket.concatenate([b, a])
