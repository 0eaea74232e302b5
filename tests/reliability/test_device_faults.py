"""Injected device faults at the device level: the symptoms are real, the controller's envelope check works."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.drivers.galvo_protocol import SET_AUX, Command, Fault
from foveate.drivers.serial_galvo import SerialGalvo
from foveate.hardware.sim.faults import FaultSchedule, FaultSpec, parse_faults
from foveate.hardware.sim.galvo_controller import SafetyEnvelope
from foveate.system.clock import ManualClock
from foveate.system.config import load_rig, parse_rig
from foveate.system.errors import ConfigError, DeviceError, DeviceTimeoutError
from foveate.system.rig import Rig

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def galvo():
    clock = ManualClock()
    g = SerialGalvo("galvo", clock, port="galvosim://?noise_deg=0", sync_burst=0, slew_deg_per_ms=4.0, watchdog_ms=100)
    g.open()
    yield g
    g.close()


def _port(g):
    return g.link.port or g.link._reopen


def _attach(g, *specs):
    schedule = FaultSchedule(specs, seed=1)
    _port(g).attach_faults(schedule, g.name)
    return schedule


# ----------------------------------------------------------------------------- schedule
def test_fault_specs_are_validated_with_one_line_errors():
    with pytest.raises(ConfigError, match=r"rig.yaml: sim.faults\[0\]: unknown fault kind 'camera.melt'"):
        parse_faults([{"kind": "camera.melt", "device": "search", "t_s": 0.1, "duration_s": 0.1}], "rig.yaml: sim.faults")
    with pytest.raises(ConfigError, match=r"sim.faults\[1\]: fault camera.stall: duration_s must be > 0"):
        parse_faults([{"kind": "serial.reset", "device": "g", "t_s": 0.1},
                      {"kind": "camera.stall", "device": "s", "t_s": 0.1}], "sim.faults")
    with pytest.raises(ConfigError, match=r"sim.faults\[0\]: .*unexpected keyword argument 'when'"):
        parse_faults([{"kind": "serial.reset", "device": "g", "when": 1}], "sim.faults")
    assert FaultSpec("events.burst", "ev", 0.0, 1.0).value == 10.0  # the 10x default


# ----------------------------------------------------------------------------- controller restart
def test_controller_restart_latches_reset_and_a_rehome_restores_the_configuration(galvo):
    ctl = _port(galvo).controller
    galvo.move_to(2.0, -1.0)
    galvo.wait_settled(0.05)
    ctl.power_cycle(galvo.clock.now_ns())
    assert ctl.faults & Fault.RESET and ctl.slew_codes_per_ms == [0, 0] and ctl.watchdog_ms == 0
    # the next move is refused instead of running without the rig's limits and slew limit
    with pytest.raises(DeviceError, match="fault latched \\(reset\\)"):
        galvo.move_to(1.0, 1.0)
    t_reset = ctl.resets[-1]
    galvo.rehome()
    after = [c for t, c in ctl.history if t >= t_reset]
    i_clear, i_slew, i_park = after.index("CLEAR_FAULTS"), after.index("SET_SLEW"), after.index("PARK")
    assert i_clear < after.index("SET_LIMITS") < i_slew < i_park
    assert ctl.faults == Fault(0) and ctl.slew_codes_per_ms != [0, 0] and ctl.watchdog_ms == 100
    galvo.move_to(1.0, 1.0)
    assert galvo.wait_settled(0.05).settled


# ----------------------------------------------------------------------------- envelope log
def test_controller_logs_out_of_envelope_commands_and_laser_on(galvo):
    """Negative controls: the checker the acceptance relies on does flag what it must."""
    ctl = _port(galvo).controller
    ctl.envelope = SafetyEnvelope(limits_deg=((-5.0, 5.0), (-5.0, 5.0)), max_slew_deg_s=4000.0,
                                  laser_keep_in_deg=((-1.0, 1.0), (-1.0, 1.0)))
    galvo.move_to(0.5, 0.5)  # inside everything, ramped at 4000 deg/s: no violation
    galvo.wait_settled(0.05)
    assert ctl.violations == []
    galvo.move_to(6.0, 0.0)  # the host's limits (+-15) are wider than the envelope: logged
    assert [v.kind for v in ctl.violations] == ["angle"]
    galvo.link.transact(Command.SET_SLEW, b"\x00" * 8)  # ramp off: the next big step is too fast
    galvo.move_to(-4.0, 0.0)
    assert [v.kind for v in ctl.violations] == ["angle", "slew"]
    galvo.link.transact(Command.SET_AUX, SET_AUX.pack(0, 1, 0xFFFF))  # laser on, mirror outside the keep-in zone
    assert ctl.violations[-1].kind == "laser" and "outside the keep-in zone" in ctl.violations[-1].detail


def test_watchdog_parks_and_switches_the_laser_off_when_the_host_goes_silent():
    rig = Rig(load_rig(_serial_rig_path()))
    with rig:
        g, laser = rig.devices["galvo"], rig.devices["laser"]
        ctl = g.link.port.controller
        g.move_to(1.0, 0.5)
        g.wait_settled(0.05)
        laser.on()
        assert ctl.aux[0][0]
        t_last = ctl._last_rx_ns
        rig.clock.sleep_s(0.3)  # the host says nothing for longer than the 250 ms watchdog
        ctl.advance(rig.clock.now_ns())
        assert not ctl.aux[0][0] and ctl.faults & Fault.WATCHDOG and tuple(ctl.target) == ctl.park_codes
        assert ctl.history[-1][0] <= t_last  # nothing was sent: the controller acted on its own
        with pytest.raises(DeviceError, match="fault is latched"):
            laser.on()
        g.recover()
        assert ctl.faults == Fault(0)


def _serial_rig_path():
    from foveate.system.config import default_rig_path

    return default_rig_path().with_name("sim_search_serial.yaml")


# ----------------------------------------------------------------------------- the wire
def test_bit_errors_and_lost_bytes_are_retried_never_executed_twice(galvo):
    ctl = _port(galvo).controller
    _attach(galvo, FaultSpec("serial.bit_errors", "galvo", 0.0, 10.0, 2e-3),
            FaultSpec("serial.drop_bytes", "galvo", 0.0, 10.0, 1e-2))
    executed0 = ctl.counters.frames - ctl.counters.duplicates
    rng = np.random.default_rng(0)
    ok = failed = 0
    for _ in range(60):
        try:
            galvo.move_to(*rng.uniform(-3, 3, 2))
            ok += 1
        except DeviceTimeoutError:
            failed += 1
    wire = _port(galvo).wire
    assert wire["bits_flipped"] > 0 and wire["bytes_lost"] > 0
    assert galvo.link.counters["retries"] > 0
    assert ok > 50  # the retries absorb almost everything at these rates
    moves = sum(1 for _, c in ctl.history if c == "SET_POSITION")
    assert moves <= 60 and ctl.counters.frames - ctl.counters.duplicates >= executed0 + ok


def test_unplug_fails_io_and_open_until_replugged_then_the_same_controller_answers(galvo):
    port = _port(galvo)
    ctl = port.controller
    t0 = galvo.clock.now_s()
    _attach(galvo, FaultSpec("serial.unplug", "galvo", t0 + 0.01, 0.2, 0.0))
    galvo.clock.sleep_s(0.02)
    with pytest.raises(DeviceError, match="serial I/O failed.*unplugged"):
        galvo.move_to(1.0, 1.0)
    with pytest.raises(DeviceError, match="cannot open the galvo controller's port.*unplugged"):
        galvo.link.reconnect()
    galvo.clock.sleep_s(0.2)
    galvo.recover()
    assert _port(galvo) is port and port.controller is ctl  # re-plugged: the same device at the end of the cable
    assert "<power cycle>" not in [c for _, c in ctl.history]
    assert ctl.faults == Fault(0)  # the watchdog trip while unplugged was cleared by the re-home
    galvo.move_to(1.0, 1.0)
    assert galvo.wait_settled(0.05).settled


def test_replug_of_a_usb_powered_controller_restarts_it(galvo):
    ctl = _port(galvo).controller
    t0 = galvo.clock.now_s()
    _attach(galvo, FaultSpec("serial.unplug", "galvo", t0, 0.05, 1.0))
    galvo.clock.sleep_s(0.06)
    galvo.recover()
    assert ctl.resets and ctl.resets[-1] == int(round((t0 + 0.05) * 1e9))


# ----------------------------------------------------------------------------- cameras
@pytest.fixture
def sim_rig():
    rig = Rig(load_rig(None))
    with rig:
        yield rig


def test_camera_faults_stall_late_duplicate_disconnect(sim_rig):
    from foveate.hardware.sim.faults import inject_faults

    rig, clock = sim_rig, sim_rig.clock
    cam = rig.devices["search"]
    t = clock.now_s()
    inject_faults(rig, [FaultSpec("camera.stall", "search", t + 0.01, 0.2),
                        FaultSpec("camera.late", "search", t + 0.3, 0.05, 0.04),
                        FaultSpec("camera.duplicate", "search", t + 0.4, 0.05),
                        FaultSpec("camera.disconnect", "search", t + 0.5, 0.05)])
    cam.read(0.1)
    clock.sleep_s(0.01)
    t_call = clock.now_ns()
    with pytest.raises(DeviceTimeoutError):
        cam.read(timeout_s=0.05)
    assert clock.now_ns() - t_call == 50_000_000  # the read waited its whole timeout, in simulated time
    f = cam.read(timeout_s=0.5)  # the stall ends within the timeout: the next frame comes after it
    assert f.t_ns >= int((t + 0.21) * 1e9)
    clock.sleep_until_ns(int((t + 0.3) * 1e9))
    f = cam.read(0.1)
    assert (clock.now_ns() - f.t_ns) * 1e-9 == pytest.approx(0.0005 + 0.001 + 0.04, abs=1e-6)  # 40 ms late
    clock.sleep_until_ns(int((t + 0.4) * 1e9))
    d = cam.read(0.1)
    assert d is f  # the same frame again
    clock.sleep_until_ns(int((t + 0.5) * 1e9))
    with pytest.raises(DeviceError, match="disconnected"):
        cam.read(0.1)
    cam.close()
    with pytest.raises(DeviceError, match="not found"):
        cam.open()
    clock.sleep_until_ns(int((t + 0.56) * 1e9))
    with pytest.raises(DeviceError, match="not open"):
        cam.read(0.1)
    cam.open()
    assert cam.read(0.1).seq > f.seq


def test_event_gap_and_burst(sim_rig):
    from foveate.hardware.sim.faults import inject_faults

    rig, clock = sim_rig, sim_rig.clock
    ev = rig.devices["wide_events"]
    clock.sleep_s(0.05)
    ev.read()
    t = clock.now_s()
    inject_faults(rig, [FaultSpec("events.gap", "wide_events", t + 0.05, 0.05),
                        FaultSpec("events.burst", "wide_events", t + 0.15, 0.05, 10.0)])
    clock.sleep_s(0.05)
    normal = ev.read()
    clock.sleep_s(0.05)
    gap = ev.read()
    clock.sleep_s(0.05)
    ev.read()
    clock.sleep_s(0.05)
    burst = ev.read()
    assert len(normal) > 50 and len(gap) == 0 and gap.duration_us == 50_000
    assert len(burst) > 5 * len(normal)
    assert np.all(np.diff(burst.events["t"]) >= 0)


def test_rig_file_faults_reach_the_twin():
    from foveate.system.config import read_yaml, default_rig_path

    data = read_yaml(default_rig_path())
    data["sim"]["faults"] = [{"kind": "camera.disconnect", "device": "search", "t_s": 0.0, "duration_s": 1.0}]
    with pytest.raises(DeviceError, match="search: camera not found"):
        Rig(parse_rig(data)).open()
