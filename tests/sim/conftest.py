"""Rigs for the twin's tests: the embedded default rig on a manual clock, with settings overridable."""

from __future__ import annotations

import copy

import yaml

from foveate.system.config import default_rig_path, parse_rig
from foveate.system.rig import Rig


def make_rig(sim: dict | None = None, devices: dict | None = None, drop: tuple = (), **top) -> Rig:
    """The default rig with ``sim`` keys and per-device ``settings`` merged in (not opened)."""
    data = yaml.safe_load(default_rig_path().read_text())
    data = copy.deepcopy(data)
    data["sim"].update(sim or {})
    for name in drop:
        data["devices"].pop(name)
    for name, settings in (devices or {}).items():
        data["devices"][name]["settings"].update(settings)
    data.update(top)
    return Rig(parse_rig(data, source="<test rig>"))
