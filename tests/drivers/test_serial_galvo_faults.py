"""Wire faults between the serial galvo driver and the simulated controller: recovery or a clear error, never a hang."""

import time

import pytest

from foveate.drivers.serial_galvo import SerialGalvo
from foveate.system.clock import ManualClock
from foveate.system.errors import DeviceTimeoutError

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def galvo():
    g = SerialGalvo("g", ManualClock(), port="galvosim://?noise_deg=0", sync_burst=0, timeout_s=0.02, retries=3)
    g.open()
    yield g
    _ctl(g).mute = False
    g.close()


def _ctl(g):
    """The simulated controller behind galvosim://."""
    return g.link.port.controller


@pytest.mark.parametrize("fault, retries, timeouts, crc, stale", [
    ("drop", 1, 1, 0, 0),  # reply lost entirely
    ("truncate", 1, 1, 0, 0),  # reply lost its last bytes: partial frame, then timeout
    ("corrupt_crc", 1, 0, 1, 0),  # reply damaged: CRC check fails, retried at once
    ("garbage", 0, 0, None, 0),  # noise and a false sync marker before the reply: resynchronised, no retry
    ("wrong_seq", 1, 1, 0, 1),  # a reply with another sequence number: discarded as stale
])
def test_reply_faults_recover(galvo, fault, retries, timeouts, crc, stale):
    ctl = _ctl(galvo)
    executed0 = ctl.counters.frames - ctl.counters.duplicates
    ctl.inject_reply_fault(fault)
    t0 = galvo.clock.now_ns()
    galvo.move_to(1.0, -0.5)
    c = galvo.link.counters
    assert (c["retries"], c["timeouts"], c["stale_replies"]) == (retries, timeouts, stale)
    if crc is not None:
        assert c["crc_errors"] == crc
    else:
        assert c["garbage_bytes"] > 0
    # a retransmission is answered from the controller's cache, not executed twice
    assert ctl.counters.frames - ctl.counters.duplicates == executed0 + 1
    assert ctl.counters.duplicates == retries
    assert ctl.target == [0x8666, 0x7CCC]
    assert galvo.clock.now_ns() - t0 <= (retries + 1) * 21e6  # bounded, in simulated time
    assert galvo.wait_settled(0.1).settled


@pytest.mark.parametrize("fault", ["drop_bytes", "corrupt"])
def test_request_faults_recover(galvo, fault):
    ctl = _ctl(galvo)
    ctl.inject_request_fault(fault)
    galvo.move_to(-2.0, 3.0)
    assert galvo.link.counters["retries"] == 1
    assert ctl.target == [galvo.scales[0].to_code(-2.0), galvo.scales[1].to_code(3.0)]
    assert ctl.counters.crc_errors >= 1 or ctl.counters.partial_timeouts >= 1 or ctl.counters.garbage_bytes > 0
    assert "rx_error" in galvo.position().faults  # the controller saw a damaged frame and says so


def test_controller_that_stops_answering_gives_a_clear_error_in_bounded_time(galvo):
    ctl = _ctl(galvo)
    ctl.mute = True
    t_sim0, t_wall0 = galvo.clock.now_ns(), time.perf_counter()
    with pytest.raises(DeviceTimeoutError, match=r"galvosim://.*no valid reply to SET_POSITION .* after 4 attempts "
                                                 r"of 20 ms each; last problem: timeout: no reply"):
        galvo.move_to(1.0, 1.0)
    assert galvo.clock.now_ns() - t_sim0 <= 4 * 21e6
    assert time.perf_counter() - t_wall0 < 1.0
    ctl.mute = False
    galvo.move_to(1.0, 1.0)  # the link is still usable once the controller answers again


def test_persistent_corruption_names_the_crc(galvo):
    _ctl(galvo).inject_reply_fault("corrupt_crc", count=10)
    with pytest.raises(DeviceTimeoutError, match="CRC"):
        galvo.position()
    assert galvo.link.counters["crc_errors"] == 4


def test_garbage_flood_is_bounded():
    """A port that only ever delivers noise ends the attempt after a byte budget, not never."""
    from serial.serialutil import SerialBase

    class Noise(SerialBase):
        def open(self):
            self.is_open = True

        def _reconfigure_port(self):
            pass

        def write(self, data):
            return len(data)

        def read(self, size=1):
            return b"\x00" * size

        def reset_input_buffer(self):
            pass

    clock = ManualClock()
    g = SerialGalvo("g", clock, port=Noise(None), retries=1)
    with pytest.raises(DeviceTimeoutError, match="bytes without a valid reply"):
        g.open()
