"""Serial galvo driver: round-trip transactions per second against the simulated controller over a pseudo-terminal.

The controller runs in its own process (``python -m foveate.hardware.sim.galvo_pty``)
behind ``/dev/pts/N``, so host and controller do not share the interpreter,
as with a real USB-CDC controller. Measured: SET_POSITION transactions
(``Galvo.move_to``, the run loop's per-view command) and READ_STATUS
(``Galvo.position``) per wall second, and the round-trip latency of a
SET_POSITION. Baseline, in the same run: the bare pty round trip of the same
byte counts (16 bytes out, 12 back) against a trivial echo process, i.e. the
floor set by the OS and Python; the ratio says how much the protocol layers
(framing, CRC, sequence check, clock sync) cost on top. On a shared machine the
mean rate includes the moments the scheduler gives neither process a core;
the rate implied by the median round trip is what one free core achieves.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

from foveate.drivers.serial_galvo import SerialGalvo
from foveate.system.clock import MonotonicClock
from foveate.tools.bench.common import Row

NAME = "galvo-serial"
DESCRIPTION = "serial galvo driver vs the simulated controller over a pseudo-terminal: transactions/s"
GOAL = 2000.0


def _start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "foveate.hardware.sim.galvo_pty", "--option", "noise_deg=0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    path = proc.stdout.readline().strip()
    if not path.startswith("/dev/"):
        proc.kill()
        raise RuntimeError(f"the pty server did not start (said {path!r})")
    return proc, path


_ECHO_SERVER = """
import os, select, sys, tty
master, slave = os.openpty()
tty.setraw(slave)
print(os.ttyname(slave), flush=True)
while True:
    r, _, _ = select.select([master, sys.stdin], [], [], 1.0)
    if sys.stdin in r:
        break
    if master in r:
        data = os.read(master, 4096)
        os.write(master, data[:12] * (len(data) // 16))
"""


def _echo_baseline(seconds: float) -> float:
    """Round trips per second of 16 bytes out / 12 back through a pty to an echo process: the OS + pyserial floor."""
    import serial

    proc = subprocess.Popen([sys.executable, "-c", _ECHO_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        port = serial.Serial(proc.stdout.readline().strip(), timeout=0.1)
        out = b"\xa5" * 16
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            port.reset_input_buffer()
            port.write(out)
            port.read(5)
            port.read(7)
            n += 1
        rate = n / (time.perf_counter() - t0)
        port.close()
    finally:
        proc.stdin.close()
        proc.wait(timeout=5)
        proc.stdout.close()
    return rate


def run(quick: bool = False) -> list[Row]:
    seconds = 0.3 if quick else 2.0
    proc, path = _start_server()
    try:
        g = SerialGalvo("galvo", MonotonicClock(), port=path, sync_burst=4)
        with g:
            targets = [(0.5 * np.sin(k / 7.0), 0.4 * np.cos(k / 5.0)) for k in range(1000)]
            lat = []
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                a = time.perf_counter()
                g.move_to(*targets[n % 1000])
                lat.append(time.perf_counter() - a)
                n += 1
            move_rate = n / (time.perf_counter() - t0)
            m, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / 2:
                g.position()
                m += 1
            status_rate = m / (time.perf_counter() - t0)
            retries = g.link.counters["retries"]
            sync = g.link.sync.summary()
    finally:
        proc.stdin.close()
        proc.wait(timeout=5)
        proc.stdout.close()
    echo_rate = _echo_baseline(seconds / 2)
    lat_us = np.array(lat) * 1e6
    return [
        Row(NAME, "SET_POSITION round trips per second (pty)", round(move_rate), "tx/s",
            baseline=f"bare pty echo {echo_rate:.0f}/s", ratio=move_rate / echo_rate, goal=f">= {GOAL:.0f} tx/s"),
        Row(NAME, "SET_POSITION round trip, median", round(float(np.median(lat_us)), 1), "us"),
        Row(NAME, "rate implied by the median round trip (an uncontended core)",
            round(1e6 / float(np.median(lat_us))), "tx/s", goal=f">= {GOAL:.0f} tx/s"),
        Row(NAME, "SET_POSITION round trip, 99th percentile", round(float(np.percentile(lat_us, 99)), 1), "us"),
        Row(NAME, "READ_STATUS round trips per second (pty)", round(status_rate), "tx/s"),
        Row(NAME, "retries during the run", retries, "count", goal="0"),
        Row(NAME, "controller clock sync residual", sync.get("residual_us") or 0.0, "us"),
    ]
