"""The serial galvo and laser over ``galvosim://`` on the simulated clock: conformance, time model, trigger, slew, sync."""

import numpy as np
import pytest

from foveate.drivers.serial_galvo import SerialGalvo
from foveate.drivers.serial_laser import SerialLaser
from foveate.drivers.testing.conformance import GalvoConformance, LineLaserConformance
from foveate.system.clock import ManualClock
from foveate.system.config import load_rig, parse_rig
from foveate.system.errors import ConfigError, DeviceError
from foveate.system.rig import Rig

pytestmark = pytest.mark.timeout(30)


class TestSerialGalvoOverGalvosim(GalvoConformance):
    @pytest.fixture
    def device(self):
        yield SerialGalvo("galvo", ManualClock(), port="galvosim://?seed=2")


class TestSerialLaserOverGalvosim(LineLaserConformance):
    @pytest.fixture
    def device(self):
        yield SerialLaser("laser", ManualClock(), port="galvosim://", power_frac=0.3)


def test_a_transaction_costs_its_wire_time_in_simulated_time():
    clock = ManualClock()
    g = SerialGalvo("g", clock, port="galvosim://?turnaround_us=20.0", baudrate=1_000_000, sync_burst=0)
    with g:
        t0 = clock.now_ns()
        g.move_to(1.0, 1.0)
        # 16 request bytes + 20 us turnaround + 12 reply bytes, 10 bits per byte at 1 Mbaud
        assert clock.now_ns() - t0 == pytest.approx((16 + 12) * 10_000 + 20_000, abs=2)


def test_trigger_fires_after_settle_and_maps_to_host_time():
    clock = ManualClock(start_ns=5_000_000)
    g = SerialGalvo("g", clock, port="galvosim://?noise_deg=0&clock_offset_us=4294960000&clock_drift_ppm=80",
                    trigger={"mode": "flagged", "delay_us": 50}, sync_burst=16)
    with g:
        ctl = g.link.port.controller
        g.move_to(3.0, 0.0)  # not flagged: no pulse
        g.wait_settled(0.1)
        assert g.last_trigger() == (0, None)
        g.trigger_next_move()
        t_cmd = clock.now_ns()
        g.move_to(-3.0, 1.0)
        st = g.wait_settled(0.1)
        clock.sleep_s(0.001)
        count, t_host = g.last_trigger()
        assert count == 1 and len(ctl.trigger_pulses) == 1
        pulse = ctl.trigger_pulses[0]
        settle_ns = max(ax.settle_time_s(ctl._window_deg()) for ax in ctl.axes) * 1e9
        assert pulse.t_ns == pytest.approx(settle_ns + 50_000, abs=1)  # the pulse waits for in-position + delay
        assert t_cmd < pulse.t_ns <= st.t_ns + 60_000
        # the controller's stamp of the pulse, through the clock sync, lands on the host clock within a few us
        assert t_host == pytest.approx(pulse.t_ns, abs=3_000)


def test_slew_limit_ramps_the_setpoint():
    clock = ManualClock()
    g = SerialGalvo("g", clock, port="galvosim://?noise_deg=0", slew_deg_per_ms=2.0, sync_burst=0)
    with g:
        t0 = clock.now_ns()
        g.move_to(10.0, 0.0)
        st = g.position()
        assert not st.settled and st.measured_deg[0] < 2.0
        st = g.wait_settled(0.1)
        # 10 deg at 2 deg/ms takes 5 ms before the servo can settle
        assert clock.now_ns() - t0 >= 5e6
        assert st.measured_deg[0] == pytest.approx(10.0, abs=0.003)


def test_watchdog_parks_in_simulated_time():
    clock = ManualClock()
    g = SerialGalvo("g", clock, port="galvosim://?noise_deg=0", watchdog_ms=10, sync_burst=0)
    with g:
        g.move_to(4.0, 4.0)
        g.wait_settled(0.1)
        clock.sleep_s(0.009)
        assert g.position().faults == ()  # 9 ms of silence: fine
        clock.sleep_s(0.0105)
        st = g.position()
        assert "watchdog" in st.faults and st.commanded_deg == pytest.approx((0.0, 0.0), abs=1e-3)
        with pytest.raises(DeviceError, match="watchdog"):
            g.move_to(1.0, 1.0)
        g.clear_faults()
        g.move_to(1.0, 1.0)


def test_clock_sync_tracks_offset_drift_and_wrap():
    clock = ManualClock()
    g = SerialGalvo("g", clock, port="galvosim://?clock_offset_us=4294000000&clock_drift_ppm=-120", sync_burst=0)
    with g:
        for i in range(400):
            g.move_to(0.01 * (i % 7), 0.0)
            clock.sleep_s(0.01)
        s = g.link.sync.summary()
    assert s["drift_ppm"] == pytest.approx(120.0, abs=2.0)  # the controller runs 120 ppm slow
    assert s["residual_us"] < 2.0
    fit = g.link.sync.fit
    dev_ns = fit.to_device_ns(clock.now_ns())
    assert abs(dev_ns / 1000 - (4294000000 + clock.now_ns() / 1000 * (1 - 120e-6))) < 3.0


def test_settings_validation_names_the_key(tmp_path):
    data = load_rig("hardware/rigs/sim_serial.yaml").model_dump(exclude={"source", "rig_dir"})
    data["devices"]["galvo"]["settings"]["limits_deg"] = [[-25.0, 15.0], [-11.0, 11.0]]
    with pytest.raises(ConfigError, match=r"devices.galvo.settings: .*limits_deg axis x: -25 deg maps to DAC code -8192"):
        parse_rig(data, source="rig.yaml")
    data["devices"]["galvo"]["settings"]["limits_deg"] = [[-15.0, 15.0], [-11.0, 11.0]]
    data["devices"]["laser"]["settings"]["baudrate"] = 115200
    with pytest.raises(ConfigError, match="devices.laser.settings.baudrate: 115200 differs"):
        Rig(parse_rig(data, source="rig.yaml"))


def test_bad_galvosim_option_is_clear():
    g = SerialGalvo("g", ManualClock(), port="galvosim://?natral_freq_hz=3")
    with pytest.raises(DeviceError, match="unknown option 'natral_freq_hz'"):
        g.open()


def test_dac_bits_mismatch_is_refused():
    g = SerialGalvo("g", ManualClock(), port="galvosim://?dac_bits=18", sync_burst=0)
    with pytest.raises(DeviceError, match="controller DAC has 18 bits but the rig file says dac_bits: 16"):
        g.open()


def test_sim_serial_rig_opens_and_shares_one_controller():
    with Rig.from_file("hardware/rigs/sim_serial.yaml") as rig:
        galvo, laser = rig.role("search_galvo"), rig.role("laser")
        assert galvo.link is laser.link
        galvo.move_to(1.0, 1.0)
        laser.on()
        assert laser.output_on()
        st = rig.status()
    assert st["devices"]["galvo"]["sync"]["samples"] > 0
    assert not laser.is_on and not galvo.is_open


def test_trigger_history_on_the_host_clock():
    clock = ManualClock()
    g = SerialGalvo("g", clock, port="galvosim://?noise_deg=0&clock_drift_ppm=60&clock_offset_us=1000",
                    trigger={"mode": "every", "delay_us": 30}, sync_burst=4)
    with g:
        ctl = g.link.port.controller
        for k in range(40):
            g.move_to(0.05 * (k % 9), -0.03 * (k % 5))
            g.wait_settled(0.1)  # polls status until in position ...
            clock.sleep_s(0.0002)
            g.position()  # ... and once more after the pulse
        g.move_to(1.0, 1.0)
        clock.sleep_s(0.01)
        g.move_to(1.5, 1.0)
        clock.sleep_s(0.01)
        g.position()
    truth = [p.t_ns for p in ctl.trigger_pulses]
    got = g.trigger_times_ns()
    assert len(truth) == 42 and len(got) == 41 and g.triggers_unseen == 1
    assert np.allclose(got[:40], truth[:40], atol=3_000)
