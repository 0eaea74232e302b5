"""Backend registry: rig files name a backend, this module finds its class.

This is the only place that knows where backends live, so runtime code
never imports the simulator. A backend is found, in order, as an explicit
``package.module:Class`` path, a built-in name, or an entry point in the
``foveate.backends`` group named ``<kind>.<backend>``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from foveate.system.errors import ConfigError

KINDS = ("frame_camera", "event_camera", "galvo", "line_laser")

BUILTIN_BACKENDS: dict[str, dict[str, str]] = {
    "frame_camera": {
        "sim": "foveate.hardware.sim.backends:SimFrameCamera",
        "opencv": "foveate.drivers.cameras.opencv:OpenCVCamera",
        "folder": "foveate.drivers.cameras.folder:ImageFolderCamera",
        "genicam": "foveate.drivers.cameras.genicam:GenICamCamera",
    },
    "event_camera": {
        "sim": "foveate.hardware.sim.backends:SimEventCamera",
        "dv": "foveate.drivers.event_cameras.live:DVEventCamera",
        "openeb": "foveate.drivers.event_cameras.live:OpenEBEventCamera",
        "replay": "foveate.drivers.replay_event_camera:ReplayEventCamera",
    },
    "galvo": {
        "sim": "foveate.hardware.sim.backends:SimGalvo",
        "serial": "foveate.drivers.serial_galvo:SerialGalvo",
    },
    "line_laser": {
        "sim": "foveate.hardware.sim.backends:SimLineLaser",
        "serial": "foveate.drivers.serial_laser:SerialLaser",
    },
}


def backend_names(kind: str) -> list[str]:
    names = set(BUILTIN_BACKENDS.get(kind, {}))
    for ep in entry_points(group="foveate.backends"):
        k, _, b = ep.name.partition(".")
        if k == kind:
            names.add(b)
    return sorted(names)


def import_object(target: str, where: str):
    """The object named ``package.module:Name``; ``ConfigError`` naming ``where`` otherwise.

    The one way the project loads code named in a config file (backends, scenes, models).
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{where}: expected 'package.module:Class', got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{where}: cannot import '{module_name}': {exc}") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"{where}: module '{module_name}' has no '{attr}'") from None


def resolve_backend(kind: str, backend: str, where: str = "backend"):
    """The device class for ``backend`` of ``kind``; ``ConfigError`` naming ``where`` otherwise."""
    from foveate.drivers.device import Device

    if ":" in backend:
        cls = import_object(backend, where)
    elif backend in BUILTIN_BACKENDS.get(kind, {}):
        cls = import_object(BUILTIN_BACKENDS[kind][backend], where)
    else:
        matches = [ep for ep in entry_points(group="foveate.backends") if ep.name == f"{kind}.{backend}"]
        if not matches:
            raise ConfigError(
                f"{where}: unknown {kind} backend '{backend}' (expected one of: {', '.join(backend_names(kind))}, "
                "or a 'package.module:Class' path)"
            )
        cls = matches[0].load()
    if not (isinstance(cls, type) and issubclass(cls, Device)):
        raise ConfigError(f"{where}: '{backend}' is not a foveate device class")
    if cls.kind != kind:
        raise ConfigError(f"{where}: backend '{backend}' is a {cls.kind}, not a {kind}")
    return cls
