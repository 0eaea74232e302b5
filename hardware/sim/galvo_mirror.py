"""The mirror of a simulated serial controller, as the twin's search camera sees it.

A rig may drive its search galvo through the real serial driver
(``backend: serial``) against the simulated controller behind
``galvosim://``; the twin's search camera then renders through the
controller's own servo model. ``ControllerMirror`` gives the camera what a
``SimGalvo`` gives it: ``axes`` (gain and offset errors: none, the
controller's mirror is ideal) and ``actual_deg(t_ns)`` in the host's command
degrees (controller codes mapped back through the galvo's gain and offset;
mid-scale, 0 deg, before the galvo's port was ever opened).
The controller is found through the driver's link each time, so a reconnect
or a controller restart is seen at once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _IdealAxis:
    gain_error: float = 0.0
    offset_error_deg: float = 0.0


class ControllerMirror:
    def __init__(self, galvo, twin) -> None:
        self.galvo = galvo
        self.twin = twin
        self.name = galvo.name
        self._port = None

    axes = (_IdealAxis(), _IdealAxis())  # the controller's mirror has no gain or offset error

    def _controller(self):
        """The controller at the end of the galvo's cable, or None while its port was never opened."""
        link = self.galvo.link
        port = link.port or getattr(link, "_reopen", None) or self._port
        ctl = getattr(port, "controller", None)
        if ctl is None:
            return None
        if port is not self._port:
            self._port = port
            faults = getattr(self.twin, "faults", None)
            if faults and getattr(port, "faults", None) is None and hasattr(port, "attach_faults"):
                port.attach_faults(faults, self.name)  # sim.faults of the rig file
        return ctl

    def actual_deg(self, t_ns: int | None = None) -> tuple[float, float]:
        ctl = self._controller()
        if ctl is None:  # the controller was never powered through this port: the mirror rests at mid-scale
            return 0.0, 0.0
        t_s = (self.twin.clock.now_ns() if t_ns is None else t_ns) * 1e-9
        out = []
        for k, ax in enumerate(ctl.axes):
            code = ctl.scale.offset_codes + ctl.scale.gain_codes_per_deg * ax.state(t_s)[0]
            s = self.galvo.scales[k]
            out.append((code - s.offset_codes) / s.gain_codes_per_deg)
        return out[0], out[1]
