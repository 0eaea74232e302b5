"""The host side of the safety envelope: laser interlock, slew check, safe shutdown, signals.

* ``LaserInterlock``: the laser goes on only while a procedure holds the
  interlock (``with interlock.hold("scan"):``) and only while the mirror
  that aims it (``safety.laser_galvo``, else the ``laser_galvo`` role, else
  ``search_galvo``) is commanded inside ``safety.laser_keep_in_deg``; a move
  that would leave the zone with the laser on switches the laser off and is
  refused (``SafetyError``); releasing the hold switches it off.
* ``check_slew``: every galvo's configured slew rate is within
  ``safety.max_slew_deg_s`` (the controller ramps its setpoint at that rate).
* ``safe_shutdown``: park every galvo, switch every laser off, close the
  recordings, then read back what the devices report; returns the report
  (``foveate run`` writes it to ``OUT/shutdown.json`` on every exit).
* ``terminate_on_sigterm``: SIGTERM raises ``Terminated`` (a
  ``KeyboardInterrupt``) in the main thread, so Ctrl-C, SIGTERM and an
  unhandled error all leave through the same ``finally`` blocks (the CLI
  runs every command under it and exits 143).

The simulated controller checks the same envelope independently and logs
any violation (``foveate.hardware.sim.galvo_controller.SafetyEnvelope``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading

from foveate.system.errors import ConfigError, DeviceError

log = logging.getLogger(__name__)


class SafetyError(DeviceError):
    """A command was refused because it would leave the safety envelope."""


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM (handled like Ctrl-C: every cleanup runs)."""


def _inside(box, x: float, y: float) -> bool:
    (x0, x1), (y0, y1) = box
    return x0 <= x <= x1 and y0 <= y <= y1


class LaserInterlock:
    """See the module docstring."""

    def __init__(self, rig, laser=None, galvo=None) -> None:
        cfg = rig.config
        s = cfg.safety
        self.laser = laser if laser is not None else rig.role("laser")
        if galvo is None:
            name = s.laser_galvo or cfg.device_by_role("laser_galvo") or cfg.device_by_role("search_galvo")
            if name is None or name not in rig.devices:
                raise ConfigError(f"{cfg.source}: safety.laser_galvo: no galvo aims the laser "
                                  f"(got {name!r}; name a galvo device or give one the laser_galvo role)")
            galvo = rig.devices[name]
        self.galvo = galvo
        self.keep_in_deg = s.laser_keep_in_deg if s.laser_keep_in_deg is not None else galvo.limits_deg
        self.holder: str | None = None
        self.refused = 0

    def inside(self, x_deg: float, y_deg: float) -> bool:
        return _inside(self.keep_in_deg, x_deg, y_deg)

    @contextlib.contextmanager
    def hold(self, owner: str):
        """Hold the laser for ``owner``; on leaving (however) the laser is switched off."""
        if self.holder is not None:
            raise SafetyError(f"{self.laser.name}: the laser is held by '{self.holder}', not free for '{owner}'")
        self.holder = owner
        try:
            yield self
        finally:
            try:
                if self.laser.is_on:
                    self.laser.off()
            finally:
                self.holder = None

    def on(self) -> None:
        if self.holder is None:
            raise SafetyError(f"{self.laser.name}: laser on refused: no procedure holds the interlock")
        x, y = self.galvo.commanded_deg
        if not self.inside(x, y):
            self.refused += 1
            raise SafetyError(f"{self.laser.name}: laser on refused: {self.galvo.name} aims at ({x:.4g}, {y:.4g}) deg, "
                              f"outside the keep-in zone {self.keep_in_deg}")
        self.laser.on()

    def off(self) -> None:
        self.laser.off()

    def move(self, x_deg: float, y_deg: float) -> None:
        """Move the laser's mirror; refused (laser switched off first) if it would aim outside the zone with the laser on."""
        if self.laser.is_on and not self.inside(x_deg, y_deg):
            self.refused += 1
            self.laser.off()
            raise SafetyError(f"{self.galvo.name}: move to ({x_deg:.4g}, {y_deg:.4g}) deg refused with the laser on: "
                              f"outside the keep-in zone {self.keep_in_deg} (laser switched off)")
        self.galvo.move_to(x_deg, y_deg)


def galvo_slew_deg_s(galvo) -> float:
    """The slew rate a galvo is configured to (inf when unlimited)."""
    per_ms = getattr(galvo, "slew_deg_per_ms", None)
    if hasattr(galvo, "link"):  # serial: the controller's ramp, None = off
        return math.inf if not per_ms else float(per_ms) * 1000.0
    axes = getattr(galvo, "axes", None)
    if axes:
        return max(float(a.slew_deg_s) if a.slew_deg_s else math.inf for a in axes)
    return math.inf


def check_slew(rig) -> None:
    """``ConfigError`` naming the galvo whose configured slew exceeds ``safety.max_slew_deg_s``."""
    limit = rig.config.safety.max_slew_deg_s
    if limit is None:
        return
    for name, dev in rig.devices.items():
        if getattr(dev, "kind", "") != "galvo":
            continue
        slew = galvo_slew_deg_s(dev)
        if slew > limit * (1 + 1e-9):
            key = "slew_deg_per_ms" if hasattr(dev, "link") else "slew_deg_s"
            raise ConfigError(f"{rig.config.source}: devices.{name}.settings.{key}: slews at {slew:g} deg/s, above "
                              f"safety.max_slew_deg_s {limit:g} (set it to at most {limit / (1000 if key.endswith('ms') else 1):g})")


def safe_shutdown(rig, recorders=(), reason: str = "end") -> dict:
    """Park the galvos, switch the lasers off, close the recordings; report what the devices say afterwards.

    Never raises: every step runs whatever the others did; problems are listed under ``errors``.
    """
    report: dict = {"reason": reason, "galvos": {}, "lasers": {}, "recordings": {}, "errors": []}
    devices = list(rig.devices.items())
    for name, dev in devices:  # lasers first: nothing is lit while mirrors move
        if getattr(dev, "kind", "") == "line_laser" and dev.is_open:
            try:
                dev.off()
                out = dev.output_on() if hasattr(dev, "output_on") else dev.is_on
                report["lasers"][name] = {"off": out is False or (out is None and not dev.is_on), "reported_on": out}
            except Exception as exc:  # noqa: BLE001 - keep shutting down
                report["errors"].append(f"{name}: {exc}")
                report["lasers"][name] = {"off": False, "error": str(exc)}
    for name, dev in devices:
        if getattr(dev, "kind", "") == "galvo" and dev.is_open:
            try:
                dev.park()
                with contextlib.suppress(DeviceError):
                    dev.wait_settled(0.1)
                st = dev.position()
                parked = all(abs(a - b) < 1e-6 for a, b in zip(st.commanded_deg, dev.park_deg))
                report["galvos"][name] = {"parked": parked, "commanded_deg": [float(v) for v in st.commanded_deg],
                                          "measured_deg": [round(float(v), 6) for v in st.measured_deg]}
            except Exception as exc:  # noqa: BLE001
                report["errors"].append(f"{name}: {exc}")
                report["galvos"][name] = {"parked": False, "error": str(exc)}
    for rec in recorders:
        key = str(getattr(rec, "path", rec))
        try:
            rec.close()
            report["recordings"][key] = {"closed": True, "chunks": getattr(rec, "chunks_written", None)}
        except Exception as exc:  # noqa: BLE001
            report["errors"].append(f"{key}: {exc}")
            report["recordings"][key] = {"closed": False, "error": str(exc)}
    report["safe"] = not report["errors"] and all(v.get("off") for v in report["lasers"].values()) and \
        all(v.get("parked") for v in report["galvos"].values())
    log.info("shutdown (%s): %s", reason, "safe" if report["safe"] else f"PROBLEMS: {report['errors']}")
    return report


@contextlib.contextmanager
def shutdown_guard(rig, recorders=(), out_dir=None):
    """Run the body; on leaving it, however (end, Ctrl-C, SIGTERM, an error), ``safe_shutdown`` and, with
    ``out_dir``, write ``shutdown.json`` there. The body's exception, if any, goes on after the shutdown."""
    import json
    import sys
    from pathlib import Path

    try:
        yield
    finally:
        exc = sys.exc_info()[1]
        reason = "end" if exc is None else ("terminated" if isinstance(exc, Terminated) else
                                            "interrupted" if isinstance(exc, KeyboardInterrupt) else
                                            f"error: {type(exc).__name__}: {exc}")
        report = safe_shutdown(rig, [r for r in recorders if r is not None], reason)
        if out_dir is not None:
            try:
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                (Path(out_dir) / "shutdown.json").write_text(json.dumps(report, indent=2) + "\n")
            except OSError as err:
                log.error("could not write %s/shutdown.json: %s", out_dir, err)
        if exc is not None:
            log.warning("stopped (%s); devices: %s", reason, "safe" if report["safe"] else report["errors"])


@contextlib.contextmanager
def terminate_on_sigterm():
    """While active (main thread only), SIGTERM raises ``Terminated`` instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
