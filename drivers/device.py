"""Base of every device: lifecycle, status and settings validation."""

from __future__ import annotations

import logging
from abc import ABC
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from foveate.system.clock import Clock
from foveate.system.context import RigContext
from foveate.system.errors import DeviceNotOpenError


class DeviceSettings(BaseModel):
    """Base of every backend's settings block in a rig file; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(ABC):
    """Something the rig opens, uses and closes.

    Subclasses implement ``_do_open``/``_do_close`` (optional) and the
    kind-specific ``_do_*`` methods; they never skip the public checks.
    """

    #: Device kind as written in rig files (``frame_camera``, ``galvo``, ...).
    kind: ClassVar[str] = "device"
    #: Pydantic model of the backend's ``settings`` block.
    Settings: ClassVar[type[DeviceSettings]] = DeviceSettings

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self._is_open = False
        self.log = logging.getLogger(f"foveate.device.{name}")

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "Device":
        """Build the backend from its validated rig-file settings."""
        return cls(name=name, clock=context.clock, **settings.model_dump())

    # -- lifecycle ---------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._is_open

    def open(self) -> "Device":
        if not self._is_open:
            self._do_open()
            self._is_open = True
            self.log.debug("opened")
        return self

    def close(self) -> None:
        if self._is_open:
            try:
                self._do_close()
            finally:
                self._is_open = False
                self.log.debug("closed")

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _do_open(self) -> None:
        pass

    def _do_close(self) -> None:
        pass

    def _check_open(self) -> None:
        if not self._is_open:
            raise DeviceNotOpenError(f"device '{self.name}' is not open")

    # -- status --------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot: kind, backend, open flag and backend details."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "backend": type(self).__name__,
            "open": self._is_open,
        }
        if self._is_open:
            out.update(self._do_status())
        return out

    def _do_status(self) -> dict[str, Any]:
        return {}
