"""pyserial URL handler ``galvosim://``: a simulated galvo controller behind a serial port.

``serial.serial_for_url("galvosim://?natural_freq_hz=1500&clock_drift_ppm=40")``
gives a ``SerialBase`` whose other end is a ``GalvoController``; query
options are ``ControllerConfig`` fields (``turnaround_us`` is the
controller's processing time before a reply, default 20). The driver registers this package with
``serial.protocol_handler_packages`` by name, so runtime code never imports it.

Time model. The port reads and advances a clock: the rig's injected clock
if the driver calls ``bind_clock`` (a ``ManualClock`` in fast mode), else a
real monotonic clock. A ``write`` of n bytes takes n x 10 bit times at the
configured baud rate (8N1): the clock advances to the moment the last byte
arrives, the controller handles the bytes at that moment, and its reply is
readable ``turnaround_us`` plus the reply's own byte time later. A ``read``
advances the clock to when the requested bytes are complete, or by the
read timeout if they never come. So a simulated transaction costs exactly the
simulated time its bytes would take on the wire, and a silent controller
costs the full timeout, in simulated time.

Faults (``foveate.hardware.sim.faults``, attached with ``attach_faults``):
line noise (bit errors) and lost bytes on the wire both ways, a controller
restart, and unplugging: while the cable is out every read and write raises
``SerialException`` (as pyserial does when a USB device goes away) and
``open`` fails; the controller runs on by itself (its watchdog trips) and,
when the cable is back, the same port object opens again onto the same
controller (restarted first if the fault says it is USB-powered). Closing
and re-opening a port never replaces its controller: it is the device at
the other end of the cable.
"""

from __future__ import annotations

import urllib.parse
from collections import deque

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from foveate.hardware.sim.faults import FaultSchedule, damage_bytes
from foveate.hardware.sim.galvo_controller import GalvoController, config_from_options
from foveate.system.clock import Clock, MonotonicClock

BITS_PER_BYTE = 10  # start + 8 data + stop


class Serial(SerialBase):
    """A serial port whose other end is a simulated galvo controller."""

    BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600, 1000000, 2000000, 3000000, 4000000)

    def __init__(self, *args, **kwargs) -> None:
        self.controller: GalvoController | None = None
        self._clock: Clock | None = None
        self._pending: deque[tuple[int, bytearray]] = deque()  # (ready time ns, bytes)
        self.faults: FaultSchedule | None = None
        self.fault_devices: set[str] = set()
        self.wire = {"bits_flipped": 0, "bytes_lost": 0, "bytes_sent": 0, "bytes_received": 0}
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ faults
    def attach_faults(self, schedule: FaultSchedule, device: str) -> None:
        """Act out the ``serial.*`` faults of ``device`` (a rig device using this port) from ``schedule``."""
        self.faults = schedule
        self.fault_devices.add(device)

    def _apply_faults(self, t_ns: int) -> None:
        """Restarts and re-plugs that are due by ``t_ns``; raises ``SerialException`` while unplugged."""
        f = self.faults
        if not f or self.controller is None:
            return
        for dev in sorted(self.fault_devices):
            for spec in f.due(dev, "serial.reset", t_ns):
                self.controller.power_cycle(spec.t0_ns)
            for spec in f.ended(dev, "serial.unplug", t_ns):
                if spec.value:
                    self.controller.power_cycle(spec.t1_ns)
        if self.unplugged(t_ns):
            raise SerialException(f"{self._port}: device disconnected (the cable is unplugged)")

    def unplugged(self, t_ns: int) -> bool:
        f = self.faults
        return bool(f) and any(f.active(d, "serial.unplug", t_ns) for d in self.fault_devices)

    def _wire(self, data: bytes, t_ns: int) -> bytes:
        if not self.faults:
            return data
        out, flipped, lost = damage_bytes(data, self.faults, self.fault_devices, t_ns)
        self.wire["bits_flipped"] += flipped
        self.wire["bytes_lost"] += lost
        return out

    # ------------------------------------------------------------------ set-up
    def bind_clock(self, clock: Clock) -> None:
        """Use the rig's clock for the wire and the controller (call before ``open``)."""
        self._clock = clock

    @property
    def clock(self) -> Clock:
        if self._clock is None:
            self._clock = MonotonicClock()
        return self._clock

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        parts = urllib.parse.urlsplit(self._port)
        if parts.scheme != "galvosim":
            raise SerialException(f"expected a galvosim:// URL, got {self._port!r}")
        options = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            config = config_from_options(options)
        except ValueError as exc:
            raise SerialException(f"{self._port}: {exc}") from None
        now = self.clock.now_ns()
        if self.controller is None:
            self.controller = GalvoController(config, start_ns=now)
        else:  # opened again: the same controller, which ran on meanwhile
            try:
                self._apply_faults(now)
            except SerialException:
                raise SerialException(f"could not open port {self._port}: no such device (unplugged)") from None
            self.controller.advance(now)
        self._pending.clear()
        self.is_open = True

    def close(self) -> None:
        self.is_open = False
        self._pending.clear()

    def _reconfigure_port(self) -> None:
        if not isinstance(self._baudrate, int) or self._baudrate <= 0:
            raise ValueError(f"invalid baudrate: {self._baudrate!r}")

    def _byte_ns(self, n: int) -> int:
        return int(n * BITS_PER_BYTE * 1e9 / self._baudrate)

    # ------------------------------------------------------------------ I/O
    def write(self, data) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        data = bytes(data)
        clock = self.clock
        self._apply_faults(clock.now_ns())
        t_arrive = clock.now_ns() + self._byte_ns(len(data))
        clock.sleep_until_ns(t_arrive)
        self.wire["bytes_sent"] += len(data)
        reply = self.controller.receive(self._wire(data, t_arrive), t_arrive)
        if reply:
            self.wire["bytes_received"] += len(reply)
            reply = self._wire(reply, t_arrive)
        if reply:
            ready = t_arrive + int(self.controller.config.turnaround_us * 1e3) + self._byte_ns(len(reply))
            self._pending.append((ready, bytearray(reply)))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        clock = self.clock
        now = clock.now_ns()
        self._apply_faults(now)
        deadline = None if self._timeout is None else now + int(self._timeout * 1e9)
        out = bytearray()
        while len(out) < size and self._pending:
            ready, chunk = self._pending[0]
            if deadline is not None and ready > deadline:
                break
            clock.sleep_until_ns(ready)
            take = size - len(out)
            out += chunk[:take]
            del chunk[:take]
            if not chunk:
                self._pending.popleft()
        if len(out) < size and deadline is not None:
            # Nothing more arrives before the deadline: the read times out, in this clock's time.
            clock.sleep_until_ns(deadline)
        self.controller.advance(clock.now_ns())
        return bytes(out)

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        now = self.clock.now_ns()
        return sum(len(c) for ready, c in self._pending if ready <= now)

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        now = self.clock.now_ns()
        while self._pending and self._pending[0][0] <= now:
            self._pending.popleft()

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    @property
    def out_waiting(self) -> int:
        return 0

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
