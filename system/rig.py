"""A rig: the devices of one rig file, built by backend name on one shared clock."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from foveate.drivers.device import Device
from foveate.system.clock import Clock, ManualClock, MonotonicClock
from foveate.system.config import RigConfig, load_rig
from foveate.system.context import RigContext
from foveate.system.errors import ConfigError
from foveate.system.registry import resolve_backend

log = logging.getLogger(__name__)


class Rig:
    """Opens every device of a rig config; closing parks galvos and turns lasers off.

    Devices are opened in file order and closed in reverse order; a failure
    while opening closes what was already open.
    """

    def __init__(self, config: RigConfig, clock: Clock | None = None) -> None:
        self.config = config
        if clock is None:
            clock = ManualClock() if config.simulated else MonotonicClock()
        self.clock = clock
        self.context = RigContext(clock=clock, rig_dir=config.rig_dir, sim=dict(config.sim), source=config.source)
        self.devices: dict[str, Device] = {}
        self.context.shared["rig.devices"] = self.devices  # backends of one rig may find each other by name
        for name, dev in config.devices.items():
            cls = resolve_backend(dev.kind, dev.backend, f"{config.source}: devices.{name}.backend")
            settings = cls.Settings.model_validate(dev.settings)
            self.devices[name] = cls.from_config(name, settings, self.context)

    @classmethod
    def from_file(cls, path: str | Path | None = None, clock: Clock | None = None) -> "Rig":
        return cls(load_rig(path), clock=clock)

    def role(self, role: str) -> Device:
        """The device playing ``role``; ``ConfigError`` if the rig has none."""
        name = self.config.device_by_role(role)
        if name is None:
            raise ConfigError(f"{self.config.source}: no device has role '{role}' (set 'role: {role}' on one device)")
        return self.devices[name]

    def has_role(self, role: str) -> bool:
        return self.config.device_by_role(role) is not None

    def open(self) -> "Rig":
        opened: list[Device] = []
        try:
            for dev in self.devices.values():
                dev.open()
                opened.append(dev)
        except BaseException:
            for dev in reversed(opened):
                try:
                    dev.close()
                except Exception:  # noqa: BLE001
                    log.exception("closing %s after a failed open", dev.name)
            raise
        return self

    def close(self) -> None:
        for dev in reversed(list(self.devices.values())):
            try:
                dev.close()
            except Exception:  # noqa: BLE001 - close every device whatever happens
                log.exception("closing %s", dev.name)

    def __enter__(self) -> "Rig":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def status(self) -> dict[str, Any]:
        return {
            "rig": self.config.name,
            "source": self.config.source,
            "clock": type(self.clock).__name__,
            "devices": {name: dev.status() for name, dev in self.devices.items()},
        }
