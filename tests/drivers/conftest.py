"""Test doubles for the serial drivers: a scripted port in the manner of PyMeasure's ``expected_protocol``."""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from serial.serialutil import SerialBase

from foveate.system.clock import ManualClock


def _hex(s: str | bytes) -> bytes:
    return bytes.fromhex(s) if isinstance(s, str) else bytes(s)


class ScriptedPort(SerialBase):
    """A port that expects exact request bytes and answers with scripted reply bytes.

    ``pairs`` is a list of ``(request, reply)`` (bytes or hex strings); a
    reply of ``b""`` means "say nothing" (the host must time out). A write
    that differs from the next expected request fails at once with both in
    hex; ``check_done`` fails if a scripted pair was never used. Timeouts
    advance the injected (manual) clock, so nothing waits in real time.
    """

    def __init__(self, pairs, clock: ManualClock) -> None:
        self.pairs = [(_hex(a), _hex(b)) for a, b in pairs]
        self.clock = clock
        self.used = 0
        self._rx = bytearray()
        super().__init__(None)
        self.is_open = True

    def open(self):
        self.is_open = True

    def close(self):
        self.is_open = False

    def _reconfigure_port(self):
        pass

    def write(self, data):
        data = bytes(data)
        if self.used >= len(self.pairs):
            raise AssertionError(f"unexpected write {data.hex(' ')}: the script has only {len(self.pairs)} pairs")
        want, reply = self.pairs[self.used]
        assert data == want, f"request {self.used}: wrote {data.hex(' ')}, expected {want.hex(' ')}"
        self.used += 1
        self._rx += reply
        return len(data)

    def read(self, size=1):
        out = bytes(self._rx[:size])
        del self._rx[:size]
        if len(out) < size:
            self.clock.sleep_s(self.timeout or 0.0)
        return out

    @property
    def in_waiting(self):
        return len(self._rx)

    def reset_input_buffer(self):
        self._rx.clear()

    def check_done(self):
        assert self.used == len(self.pairs), (
            f"{len(self.pairs) - self.used} scripted pair(s) unused, next: {self.pairs[self.used][0].hex(' ')}")


@contextmanager
def expected_protocol(cls, pairs, **kwargs):
    """Yield an open ``cls(name='dut', clock=ManualClock(), port=ScriptedPort(pairs), **kwargs)``.

    The script covers the whole session, opening and closing traffic included;
    on exit the device is closed and every pair must have been used.
    """
    clock = ManualClock()
    port = ScriptedPort(pairs, clock)
    dev = cls(name="dut", clock=clock, port=port, **kwargs)
    dev.open()
    yield dev
    dev.close()
    port.check_done()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_SPY_LINE = re.compile(r"^\d+\.\d+ (TX|RX)\s+[0-9A-F]{4}  (.{1,49})")


def load_spy_trace(path: str | Path) -> list[tuple[bytes, bytes]]:
    """``(request, reply)`` pairs from a hex dump written by pyserial's ``spy://`` (one TX run, then its RX)."""
    pairs: list[list[bytearray]] = []
    for raw in Path(path).read_text().splitlines():
        m = _SPY_LINE.match(_ANSI.sub("", raw))
        if not m:
            continue  # reset_input_buffer and other control lines
        data = bytes.fromhex(m.group(2))
        if m.group(1) == "TX":
            if not pairs or pairs[-1][1]:
                pairs.append([bytearray(), bytearray()])
            pairs[-1][0] += data
        elif pairs:
            pairs[-1][1] += data
    return [(bytes(a), bytes(b)) for a, b in pairs]


@pytest.fixture
def scripted():
    """``expected_protocol`` (a context manager); ``scripted.port`` is ``ScriptedPort``, ``scripted.trace`` loads a spy:// trace."""
    expected_protocol.port = ScriptedPort
    expected_protocol.trace = load_spy_trace
    return expected_protocol
