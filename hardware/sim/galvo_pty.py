"""The simulated galvo controller behind a real pseudo-terminal (``/dev/pts/N``).

The host driver opens the slave device exactly like a USB-CDC controller at
``/dev/ttyACM0``, so the whole OS serial path (termios, select, the tty line
discipline) is exercised. Time is real (monotonic): watchdogs, settling and
trigger pulses happen in wall time. The server runs in a thread
(``GalvoPtyServer().start()``) or as its own process::

    python -m foveate.hardware.sim.galvo_pty [--option key=value ...]

which prints the device path on its first line and serves until stdin closes
or it is interrupted.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import threading
import time
import tty

from foveate.hardware.sim.galvo_controller import ControllerConfig, GalvoController, config_from_options


class GalvoPtyServer:
    """Serves one ``GalvoController`` on a fresh pseudo-terminal; ``path`` is the device to open."""

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self._master, self._slave = os.openpty()
        # Raw mode before anyone opens it: no echo, no line editing, no CR/LF mangling.
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.controller = GalvoController(config, start_ns=time.monotonic_ns())
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> "GalvoPtyServer":
        self._thread = threading.Thread(target=self._serve_safely, name=f"galvo-pty {self.path}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "GalvoPtyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve_safely(self) -> None:
        try:
            self.serve()
        except BaseException as exc:  # noqa: BLE001 - reported to whoever started us
            self.error = exc

    def serve(self) -> None:
        """Answer frames until ``stop``; wakes every millisecond to run the watchdog and triggers."""
        ctl = self._master
        while not self._stop.is_set():
            readable, _, _ = select.select([ctl, self._wake_r], [], [], 0.001)
            now = time.monotonic_ns()
            if ctl not in readable:
                self.controller.advance(now)
                continue
            try:
                data = os.read(ctl, 4096)
            except OSError:  # the pty went away
                return
            reply = self.controller.receive(data, now)
            if reply:
                os.write(ctl, reply)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="controller option (ControllerConfig field), e.g. clock_drift_ppm=40")
    args = p.parse_args(argv)
    bad = [o for o in args.option if "=" not in o]
    if bad:
        p.error(f"--option {bad[0]!r}: expected KEY=VALUE")
    try:
        config = config_from_options(dict(o.split("=", 1) for o in args.option))
    except ValueError as exc:
        p.error(str(exc))
    server = GalvoPtyServer(config).start()
    print(server.path, flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
