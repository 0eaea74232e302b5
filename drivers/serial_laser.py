"""Line-laser backend ``serial``: the laser's enable/modulation input on the galvo controller's aux output.

The laser shares the controller (and its ``GalvoLink``) with the galvo: in a
rig file give both the same ``port``. The controller switches the aux output
off by itself when its watchdog trips or a fault latches, and refuses to
switch it on until the fault is cleared, so a crashed host never leaves the
laser on; ``status()`` reports the output the controller actually drives.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from foveate.drivers.device import DeviceSettings
from foveate.drivers.galvo_protocol import (
    SET_AUX,
    Command,
    ControllerError,
    ControllerStatus,
    ErrorCode,
    StatusFlag,
    unpack_ack,
)
from foveate.drivers.line_laser import LineLaser
from foveate.drivers.serial_galvo import GalvoLink, shared_link
from foveate.system.clock import Clock
from foveate.system.context import RigContext
from foveate.system.errors import DeviceError


class SerialLaserSettings(DeviceSettings):
    port: str = Field(description="the galvo controller's pyserial URL (same as the galvo's)")
    baudrate: int = Field(921600, gt=0)
    timeout_s: float = Field(0.02, gt=0, le=5.0)
    retries: int = Field(3, ge=0, le=20)
    aux_output: int = Field(0, ge=0, le=255)
    power_frac: float = Field(1.0, ge=0.0, le=1.0)


class SerialLaser(LineLaser):
    """A line laser switched and modulated (16-bit level) through the controller's aux output."""

    Settings = SerialLaserSettings

    def __init__(self, name: str, clock: Clock, port: str, baudrate: int = 921600, timeout_s: float = 0.02,
                 retries: int = 3, aux_output: int = 0, power_frac: float = 1.0, link: GalvoLink | None = None) -> None:
        super().__init__(name, clock, power_frac=power_frac)
        self.link = link or GalvoLink(port, clock, baudrate, timeout_s, retries)
        self.aux_output = int(aux_output)

    @classmethod
    def from_config(cls, name: str, settings: SerialLaserSettings, context: RigContext) -> "SerialLaser":
        s = settings.model_dump()
        link = shared_link(context, name, s["port"], s["baudrate"], s["timeout_s"], s["retries"])
        return cls(name=name, clock=context.clock, link=link, **s)

    def _do_open(self) -> None:
        self.link.open()
        n_aux = self.link.identity.n_aux
        if self.aux_output >= n_aux:
            self.link.close()
            raise DeviceError(f"{self.name}: aux_output {self.aux_output} does not exist; the controller at "
                              f"{self.link.url} has {n_aux} aux output(s)")
        try:
            self._send(False, self._power_frac)
        except BaseException:
            self.link.close()
            raise

    def _do_close(self) -> None:
        self.link.close()

    def _send(self, on: bool, power_frac: float) -> None:
        level = round(power_frac * 0xFFFF)
        try:
            reply, t0, t1 = self.link.transact(Command.SET_AUX, SET_AUX.pack(self.aux_output, int(on), level))
        except ControllerError as exc:
            if exc.code == ErrorCode.FAULT_LATCHED:
                raise DeviceError(f"{self.name}: the controller refuses to switch the laser on while a fault is "
                                  "latched (watchdog or servo); clear the galvo's faults first") from None
            raise DeviceError(f"{self.name}: {exc}") from None
        self.link.stamp(unpack_ack(reply), t0, t1, *self.link.last_sizes)

    def _do_set_output(self, on: bool, power_frac: float) -> None:
        self._send(on, power_frac)

    def output_on(self) -> bool | None:
        """What the controller drives now (aux 0 only is reported in the status; None for others)."""
        if self.aux_output != 0:
            return None
        st = ControllerStatus.unpack(self.link.transact(Command.READ_STATUS)[0])
        return bool(st.flags & StatusFlag.AUX0_ON)

    def _do_status(self) -> dict[str, Any]:
        return {**super()._do_status(), "port": self.link.url, "aux_output": self.aux_output,
                "output_on": self.output_on(), "sync": self.link.sync.summary()}
