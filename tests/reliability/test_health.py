"""The health monitor on its own: back-off timing, what counts as a device fault, bounded records."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.system.clock import ManualClock
from foveate.system.config import ReliabilityConfig
from foveate.system.errors import DeviceError, DeviceTimeoutError, LimitError
from foveate.system.search import health as health_mod
from foveate.system.search.health import HealthMonitor
from foveate.system.types import EVENT_DTYPE, EventPacket, Frame


class FlakyCamera:
    """Fails to open until ``back_at_ns``; records when it was asked to."""

    kind = "frame_camera"
    view = "search"
    readout_s = 0.001

    def __init__(self, clock, back_at_ns: int) -> None:
        self.name, self.clock, self.back_at_ns = "cam", clock, back_at_ns
        self.open_tries: list[int] = []
        self.seq = 0
        self.broken = True

    def close(self) -> None: ...

    def open(self):
        self.open_tries.append(self.clock.now_ns())
        if self.clock.now_ns() < self.back_at_ns:
            raise DeviceError("cam: camera not found")
        self.broken = False
        return self

    def read(self, timeout_s):
        if self.broken:
            raise DeviceError("cam: camera disconnected")
        self.seq += 1
        return Frame(np.zeros((2, 2), np.uint8), self.clock.now_ns() - 1_500_000, 0.001, self.seq, "cam")


def test_reconnect_backs_off_doubling_up_to_the_limit_and_recovery_is_timed():
    clock = ManualClock()
    settings = ReliabilityConfig(reconnect_initial_s=0.02, reconnect_factor=2.0, reconnect_max_s=0.1)
    h = HealthMonitor(clock, settings)
    cam = FlakyCamera(clock, back_at_ns=500_000_000)
    assert h.read(cam) is None and not h.usable(cam)
    while not h.usable(cam):
        h.recover()
        clock.sleep_s(0.001)
    tries_s = np.round(np.array(cam.open_tries) * 1e-9, 3)
    assert list(tries_s) == [0.02, 0.06, 0.14, 0.24, 0.34, 0.44, 0.54]  # waits 20, 40, 80, then capped at 100 ms
    frame = h.read(cam)
    assert frame is not None and h.check_frame(cam, frame, drop_late=True)
    rec = h.summary()["records"][0]
    assert (rec["kind"], rec["t_detect_s"], rec["attempts"]) == ("disconnect", 0.0, 7)
    assert rec["t_recover_s"] == pytest.approx(0.541, abs=1e-6)  # the first good frame after reopening


def test_a_refused_command_is_a_bug_not_a_device_fault():
    h = HealthMonitor(ManualClock(), ReliabilityConfig())

    class G:
        name, kind = "g", "galvo"

    def refuse():
        raise LimitError("g: command theta_x_deg=99 outside limits")

    with pytest.raises(LimitError):
        h.call(G(), refuse)
    assert h.summary()["count"] == 0


def test_stalls_reconnect_after_n_timeouts_in_a_row():
    clock = ManualClock()
    h = HealthMonitor(clock, ReliabilityConfig(stall_reconnect_after=3))

    class Stalled(FlakyCamera):
        def read(self, timeout_s):
            self.clock.sleep_s(timeout_s)
            raise DeviceTimeoutError("cam: no frame within 0.1 s")

    cam = Stalled(clock, 0)
    for k in range(3):
        assert h.usable(cam)
        assert h.read(cam) is None
    assert not h.usable(cam) and clock.now_s() == pytest.approx(0.3)
    s = h.summary()
    assert s["count"] == 1 and s["records"][0]["kind"] == "stall" and s["records"][0]["frames_lost"] == 3


def test_event_burst_is_thinned_and_a_gap_keeps_the_last_map():
    clock = ManualClock()
    h = HealthMonitor(clock, ReliabilityConfig(event_burst_factor=4.0, event_gap_min_events=20))

    class Ev:
        name, kind = "ev", "event_camera"

    ev, rng = Ev(), np.random.default_rng(0)

    def packet(n, t0_us):
        e = np.zeros(n, EVENT_DTYPE)
        e["t"] = np.sort(rng.integers(t0_us, t0_us + 100_000, n))
        return EventPacket(e, (64, 48), t0_us, t0_us + 100_000)

    t = 0
    for _ in range(6):
        assert len(h.check_events(ev, packet(100, t))) == 100
        t += 100_000
    burst = h.check_events(ev, packet(1000, t))
    assert len(burst) == 400 and np.all(np.diff(burst.events["t"]) >= 0)  # 4x the running rate, spread evenly
    assert h.check_events(ev, packet(0, t + 100_000)) is None  # a gap: no segmentation of nothing
    assert len(h.check_events(ev, packet(100, t + 200_000))) == 100
    s = h.summary()
    assert [r["kind"] for r in s["records"]] == ["burst", "gap"] and s["open"] == 0
    assert s["devices"]["ev"]["events_dropped"] == 600


def test_fault_records_are_bounded(monkeypatch):
    monkeypatch.setattr(health_mod, "MAX_RECORDS", 5)
    clock = ManualClock()
    h = HealthMonitor(clock, ReliabilityConfig())
    cam = FlakyCamera(clock, back_at_ns=0)
    cam.broken = False
    for k in range(20):
        f = cam.read(0.1)
        h.check_frame(cam, f, drop_late=True)
        h.check_frame(cam, f, drop_late=True)  # a duplicate: a fault, closed by the next fresh frame
        clock.sleep_s(0.01)
    s = h.summary()
    assert s["count"] == 20 and len(s["records"]) == 5
