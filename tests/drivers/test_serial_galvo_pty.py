"""Acceptance: the serial galvo driver against the simulated controller through a real OS pseudo-terminal."""

import time

import pytest

from foveate.drivers.galvo_protocol import SET_LIMITS, Command
from foveate.drivers.serial_galvo import SerialGalvo
from foveate.drivers.serial_laser import SerialLaser
from foveate.drivers.testing.conformance import GalvoConformance
from foveate.hardware.sim.galvo_pty import GalvoPtyServer
from foveate.system.clock import MonotonicClock
from foveate.system.errors import DeviceError, DeviceTimeoutError, LimitError

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def server():
    with GalvoPtyServer() as srv:
        yield srv
    assert srv.error is None


def test_pty_is_a_real_device_node(server):
    assert server.path.startswith("/dev/pts/")


def test_move_read_back_park_watchdog_and_refusal_over_pty(server):
    clock = MonotonicClock()
    g = SerialGalvo("galvo", clock, port=server.path, watchdog_ms=40, sync_burst=4)
    laser = SerialLaser("laser", clock, port=server.path, link=g.link)
    with g, laser:
        ctl = server.controller
        # move and read back
        g.move_to(2.5, -1.25)
        st = g.wait_settled(timeout_s=0.5)
        assert st.settled and st.commanded_deg == (2.5, -1.25)
        assert st.measured_deg == pytest.approx((2.5, -1.25), abs=0.01)
        assert ctl.mirror_deg(time.monotonic_ns()) == pytest.approx((2.5, -1.25), abs=0.002)
        assert st.device_t_ns is not None and st.t_ns > 0
        # park
        g.park()
        st = g.wait_settled(timeout_s=0.5)
        assert st.commanded_deg == g.park_deg
        assert st.measured_deg == pytest.approx(g.park_deg, abs=0.01)

        # refused out-of-range command: by the host before sending ...
        n_tx = g.link.counters["transactions"]
        with pytest.raises(LimitError):
            g.move_to(16.0, 0.0)
        assert g.link.counters["transactions"] == n_tx
        # ... and by the controller when its limits are narrower than the host's (never clipped)
        x_hi = g.scales[0].to_code(1.0)
        g.link.transact(Command.SET_LIMITS, SET_LIMITS.pack(g.scales[0].to_code(-1.0), x_hi, 0, 65535))
        with pytest.raises(LimitError, match="OUT_OF_RANGE.*axis x"):
            g.move_to(2.0, 0.0)
        assert g.position().commanded_deg == pytest.approx(g.park_deg, abs=1e-3)

        # watchdog: move, switch the laser on, then stay silent longer than 40 ms
        g.move_to(0.5, 0.5)
        g.wait_settled(timeout_s=0.5)
        laser.on()
        assert laser.output_on()
        time.sleep(0.12)
        st = g.wait_settled(timeout_s=0.5)
        assert "watchdog" in st.faults
        assert st.commanded_deg == pytest.approx(g.park_deg, abs=1e-3)
        assert st.measured_deg == pytest.approx(g.park_deg, abs=0.01)
        assert laser.output_on() is False  # the controller switched the laser off
        with pytest.raises(DeviceError, match="fault latched \\(watchdog\\).*clear_faults"):
            g.move_to(0.5, 0.5)
        with pytest.raises(DeviceError, match="laser on while a fault is latched"):
            laser.on()
        g.clear_faults()
        g.move_to(0.5, 0.5)
        assert g.wait_settled(timeout_s=0.5).faults == ()


def test_silent_controller_over_pty_times_out_quickly(server):
    g = SerialGalvo("galvo", MonotonicClock(), port=server.path, timeout_s=0.01, retries=2, sync_burst=0)
    with g:
        server.controller.mute = True
        t0 = time.perf_counter()
        with pytest.raises(DeviceTimeoutError, match="after 3 attempts"):
            g.move_to(1.0, 1.0)
        assert time.perf_counter() - t0 < 0.5
        server.controller.mute = False


def test_spy_url_captures_the_traffic(server, tmp_path):
    log = tmp_path / "trace.txt"
    g = SerialGalvo("galvo", MonotonicClock(), port=f"spy://{server.path}?file={log}", sync_burst=0)
    with g:
        g.move_to(1.0, -0.5)
    text = log.read_text()
    assert "A5 5A 00 01 01 8C EF" in text.upper()  # IDENTIFY, seq 1, as in the spec


def test_unopenable_port_names_it():
    g = SerialGalvo("galvo", MonotonicClock(), port="/dev/does-not-exist-galvo")
    with pytest.raises(DeviceError, match="/dev/does-not-exist-galvo: cannot open the galvo controller's port"):
        g.open()


class TestSerialGalvoOverPty(GalvoConformance):
    @pytest.fixture
    def device(self, server):
        yield SerialGalvo("galvo", MonotonicClock(), port=server.path, sync_burst=2)


def test_pty_server_as_its_own_process():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "foveate.hardware.sim.galvo_pty", "--option", "clock_drift_ppm=20"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        with SerialGalvo("galvo", MonotonicClock(), port=path, sync_burst=2) as g:
            g.move_to(1.0, 1.0)
            assert g.wait_settled(timeout_s=0.5).measured_deg == pytest.approx((1.0, 1.0), abs=0.01)
    finally:
        proc.stdin.close()  # the server stops when its stdin closes
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()
