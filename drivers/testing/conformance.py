"""Conformance suites, one per device interface (in the manner of python-microscope).

Combine a suite with a fixture named ``device`` that yields a *closed*
instance of the backend under test::

    class TestMyGalvo(GalvoConformance):
        @pytest.fixture
        def device(self):
            yield MyGalvo(...)

The suites only use the public interface, so the simulated backends, the
serial driver against the simulated controller and a real device (through
``pytest --rig RIG``) all run the same checks. Galvo tests move only inside
the central tenth of the configured range.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from foveate.drivers.event_camera import EventCamera
from foveate.drivers.frame_camera import FrameCamera
from foveate.drivers.galvo import Galvo
from foveate.drivers.line_laser import LineLaser
from foveate.system.errors import DeviceNotOpenError, LimitError
from foveate.system.types import EVENT_DTYPE, EventPacket, Frame, GalvoState


class DeviceConformance:
    """Lifecycle checks shared by every device kind."""

    interface: type = object

    def test_is_instance_of_interface(self, device):
        assert isinstance(device, self.interface)

    def test_open_close_idempotent(self, device):
        assert not device.is_open
        device.open()
        device.open()
        assert device.is_open
        device.close()
        device.close()
        assert not device.is_open

    def test_context_manager_closes(self, device):
        with device as d:
            assert d is device and device.is_open
        assert not device.is_open

    def test_status_is_jsonable(self, device):
        import json

        with device:
            st = device.status()
        json.dumps(st)
        assert st["name"] == device.name and st["kind"] == device.kind


class FrameCameraConformance(DeviceConformance):
    interface = FrameCamera

    def test_read_requires_open(self, device):
        with pytest.raises(DeviceNotOpenError):
            device.read()

    def test_frames_have_declared_shape_and_increasing_stamps(self, device):
        with device:
            frames = [device.read(timeout_s=2.0) for _ in range(3)]
        for f in frames:
            assert isinstance(f, Frame)
            assert f.image.shape[:2] == device.shape
            assert f.image.dtype in (np.uint8, np.uint16)
            assert f.source == device.name
            assert f.exposure_s > 0
        assert frames[0].t_ns < frames[1].t_ns < frames[2].t_ns
        assert frames[0].seq < frames[1].seq < frames[2].seq
        assert device.frames_read == 3

    def test_exposure_validation(self, device):
        with device:
            lo, hi = device.exposure_range_s
            with pytest.raises(ValueError):
                device.set_exposure(-1.0)
            with pytest.raises(ValueError):
                device.set_exposure(float("nan"))
            with pytest.raises(ValueError):
                device.set_exposure(hi * 2)
            target = min(max(device.exposure_s * 0.5, lo), hi)
            device.set_exposure(target)
            assert device.exposure_s == pytest.approx(target)
            assert device.read(timeout_s=2.0).exposure_s == pytest.approx(target)

    def test_bad_timeout_refused(self, device):
        with device, pytest.raises(ValueError):
            device.read(timeout_s=0)


class EventCameraConformance(DeviceConformance):
    interface = EventCamera

    def _advance(self, device, dt_ns=5_000_000):
        device.clock.sleep_ns(dt_ns)

    def test_read_requires_open(self, device):
        with pytest.raises(DeviceNotOpenError):
            device.read()

    def test_packets_tile_time_and_respect_sensor(self, device):
        with device:
            packets = []
            for _ in range(4):
                self._advance(device)
                packets.append(device.read(timeout_s=2.0))
        w, h = device.sensor_size
        for a, b in zip(packets, packets[1:]):
            assert a.t_end_us == b.t_start_us, "consecutive packets must be contiguous (half-open)"
        for p in packets:
            assert isinstance(p, EventPacket)
            assert p.events.dtype == EVENT_DTYPE
            assert p.sensor_size == device.sensor_size
            ev = p.events
            if len(ev):
                assert np.all(np.diff(ev["t"]) >= 0), "events must be time-sorted"
                assert ev["t"][0] >= p.t_start_us and ev["t"][-1] < p.t_end_us
                assert ev["x"].max() < w and ev["y"].max() < h
                assert set(np.unique(ev["p"])) <= {0, 1}
        assert device.events_read == sum(len(p) for p in packets)


class GalvoConformance(DeviceConformance):
    interface = Galvo
    #: how close a settled reading must be to the command (deg)
    settle_tolerance_deg = 0.01

    def _inner(self, device, fx: float, fy: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = device.limits_deg
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        return cx + fx * (x1 - x0) / 20, cy + fy * (y1 - y0) / 20

    def test_move_requires_open(self, device):
        with pytest.raises(DeviceNotOpenError):
            device.move_to(*self._inner(device, 0, 0))

    def test_move_and_settle(self, device):
        with device:
            target = self._inner(device, 0.5, -0.5)
            device.move_to(*target)
            st = device.wait_settled(timeout_s=0.5)
            assert isinstance(st, GalvoState)
            assert st.settled
            assert st.commanded_deg == pytest.approx(target)
            assert st.measured_deg[0] == pytest.approx(target[0], abs=self.settle_tolerance_deg)
            assert st.measured_deg[1] == pytest.approx(target[1], abs=self.settle_tolerance_deg)

    def test_out_of_range_refused_not_clipped(self, device):
        with device:
            start = self._inner(device, 0.2, 0.2)
            device.move_to(*start)
            device.wait_settled(timeout_s=0.5)
            (x0, x1), (y0, y1) = device.limits_deg
            for bad in ((x1 + 0.5, start[1]), (start[0], y0 - 0.5), (math.nan, 0.0), (0.0, math.inf)):
                with pytest.raises(LimitError):
                    device.move_to(*bad)
            st = device.position()
            assert st.commanded_deg == pytest.approx(start)

    def test_park(self, device):
        with device:
            device.move_to(*self._inner(device, -0.7, 0.7))
            device.wait_settled(timeout_s=0.5)
            device.park()
            st = device.wait_settled(timeout_s=0.5)
            assert st.commanded_deg == pytest.approx(device.park_deg)

    def test_state_times_increase(self, device):
        with device:
            a = device.position()
            device.move_to(*self._inner(device, 0.1, 0.1))
            b = device.wait_settled(timeout_s=0.5)
        assert b.t_ns >= a.t_ns

    def test_bad_timeout_refused(self, device):
        with device, pytest.raises(ValueError):
            device.wait_settled(timeout_s=-1)


class LineLaserConformance(DeviceConformance):
    interface = LineLaser

    def test_switching_requires_open(self, device):
        with pytest.raises(DeviceNotOpenError):
            device.on()

    def test_on_off_power(self, device):
        with device:
            device.set_power(0.25)
            assert device.power_frac == pytest.approx(0.25)
            device.on()
            assert device.is_on
            device.off()
            assert not device.is_on
            for bad in (-0.1, 1.5, math.nan):
                with pytest.raises(ValueError):
                    device.set_power(bad)
            assert device.power_frac == pytest.approx(0.25)

    def test_close_turns_laser_off(self, device):
        device.open()
        device.on()
        device.close()
        assert not device.is_on


SUITES = {
    "frame_camera": FrameCameraConformance,
    "event_camera": EventCameraConformance,
    "galvo": GalvoConformance,
    "line_laser": LineLaserConformance,
}
