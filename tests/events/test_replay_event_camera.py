"""The ``replay`` EventCamera backend: conformance, pacing on the injected clock, loops, rig files."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.drivers.replay_event_camera import ReplayEventCamera
from foveate.drivers.testing.conformance import EventCameraConformance
from foveate.system.clock import ManualClock
from foveate.system.config import parse_rig
from foveate.system.events import open_events, write_events
from foveate.system.registry import resolve_backend
from foveate.system.rig import Rig


@pytest.fixture
def recording(tmp_path, make_events):
    ev = make_events(20_000, size=(320, 240), t_span_us=200_000, t0=5_000_000)
    p = tmp_path / "rec.raw"
    write_events(p, ev, (320, 240))
    return p, ev


class TestReplayConformance(EventCameraConformance):
    @pytest.fixture(params=["synthetic", "real"])
    def device(self, request, recording, real_path):
        path = recording[0] if request.param == "synthetic" else real_path("evt3_sample.raw")
        yield ReplayEventCamera("replay", ManualClock(), path, speed=1.0)


def test_registry_knows_replay():
    assert resolve_backend("event_camera", "replay") is ReplayEventCamera


def test_paced_at_real_time_times_speed(recording):
    p, ev = recording
    clock = ManualClock(start_ns=123_000_000)
    cam = ReplayEventCamera("r", clock, p, speed=2.0)
    packets = []
    with cam:
        for dt_ms in (1, 4, 0, 10, 7):
            clock.advance_ns(dt_ms * 1_000_000)
            packets.append(cam.read())
    t0 = int(ev["t"][0])
    ends = np.cumsum([1, 4, 0, 10, 7]) * 1000 * 2 + t0
    assert [q.t_end_us for q in packets] == list(ends)
    assert packets[0].t_start_us == t0
    got = np.concatenate([q.events for q in packets])
    np.testing.assert_array_equal(got, ev[ev["t"] < ends[-1]])


def test_as_fast_as_possible_covers_the_file_then_finishes(recording):
    p, ev = recording
    cam = ReplayEventCamera("r", ManualClock(), p, speed=None, packet_us=7_000)
    with cam:
        packets = [cam.read() for _ in range(40)]
        st = cam.status()
    np.testing.assert_array_equal(np.concatenate([q.events for q in packets]), ev)
    assert all(q.duration_us == 7_000 for q in packets)
    assert st["finished"] and st["events_read"] == len(ev)


def test_loop_shifts_time_by_the_file_duration(recording):
    p, ev = recording
    period = int(ev["t"][-1]) + 1 - int(ev["t"][0])
    cam = ReplayEventCamera("r", ManualClock(), p, speed=None, packet_us=50_000, loop=True)
    with cam:
        got = np.concatenate([cam.read().events for _ in range(10)])
        assert cam.status()["loops"] >= 2
    assert np.all(np.diff(got["t"]) >= 0)
    second = got[len(ev): 2 * len(ev)]
    np.testing.assert_array_equal(second["t"], ev["t"] + period)
    np.testing.assert_array_equal(second["x"], ev["x"])


def test_start_us_and_sensor_override(recording):
    p, ev = recording
    start = int(ev["t"][5000])
    cam = ReplayEventCamera("r", ManualClock(), p, speed=None, packet_us=1_000_000, start_us=start, width=640, height=480)
    with cam:
        pk = cam.read()
    assert cam.sensor_size == (640, 480) and pk.t_start_us == start
    np.testing.assert_array_equal(pk.events, ev[ev["t"] >= start])


def test_bad_settings():
    with pytest.raises(ValueError):
        ReplayEventCamera("r", ManualClock(), "x.raw", speed=0)


def test_rig_file_with_replay_backend(tmp_path, recording):
    p, ev = recording
    data = {
        "name": "replay-rig",
        "clock": "simulated",
        "devices": {"cam": {"kind": "event_camera", "backend": "replay", "role": "wide_events",
                            "settings": {"path": p.name, "speed": 1.0}}},
    }
    cfg = parse_rig(data, source=str(tmp_path / "rig.yaml"), rig_dir=tmp_path)
    with Rig(cfg, clock=ManualClock()) as rig:
        cam = rig.role("wide_events")
        rig.clock.sleep_ns(50_000_000)
        pk = cam.read()
    np.testing.assert_array_equal(pk.events, ev[ev["t"] < int(ev["t"][0]) + 50_000])
    assert open_events(p).sensor_size == cam.sensor_size
