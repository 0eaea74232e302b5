"""``foveate galvo-sim``: the simulated galvo controller on a pseudo-terminal, as a stand-in for /dev/ttyACM0."""

from __future__ import annotations

import time

from foveate.system.errors import FoveateError
from foveate.tools.argtypes import positive_float

NAME = "galvo-sim"
HELP = "serve the simulated galvo controller on a pseudo-terminal (a stand-in for a USB controller)"
DESCRIPTION = (
    "Starts the simulated galvo controller (hardware/protocol/galvo_serial.md) behind a new pseudo-terminal "
    "and prints its device path; point a rig file's galvo (and laser) 'port:' at it, or any host software "
    "that speaks the protocol. Serves until interrupted (or for --seconds), then prints what it saw."
)


def add_arguments(p) -> None:
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="controller option, repeatable: dac_bits, full_scale_deg, natural_freq_hz, damping, "
                        "noise_deg, seed, clock_offset_us, clock_drift_ppm, n_aux, turnaround_us, ...")
    p.add_argument("--seconds", type=positive_float, default=None, help="stop after this many seconds (default: Ctrl-C)")


def run(args) -> int:
    from foveate.hardware.sim.galvo_controller import config_from_options
    from foveate.hardware.sim.galvo_pty import GalvoPtyServer

    bad = [o for o in args.option if "=" not in o]
    if bad:
        raise FoveateError(f"--option {bad[0]!r}: expected KEY=VALUE")
    try:
        config = config_from_options(dict(o.split("=", 1) for o in args.option))
    except ValueError as exc:
        raise FoveateError(f"--option: {exc}") from None
    server = GalvoPtyServer(config).start()
    print(f"simulated galvo controller on {server.path}")
    print(f"  rig file:  port: {server.path}   (galvo and laser)")
    print("  traffic:   port: spy://" + server.path + "?file=trace.txt", flush=True)
    try:
        if args.seconds is None:
            while True:
                time.sleep(1.0)
        else:
            time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    c = server.controller.counters
    print(f"served {c.frames} frames ({c.duplicates} retransmissions, {c.crc_errors} CRC errors, "
          f"{c.garbage_bytes} garbage bytes), {len(server.controller.trigger_pulses)} trigger pulses")
    if server.error is not None:
        raise FoveateError(f"the controller stopped: {server.error}")
    return 0
