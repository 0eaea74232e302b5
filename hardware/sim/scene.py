"""What a simulated camera looks at: the scene protocol, the scene registry, save and load.

A scene answers one question: what intensity and class does each ray see at
time ``t_s``? Cameras compute their pixel rays from their geometric model
(``PinholeCamera`` / ``GalvoCamera`` in the rig frame: x right, y down,
z forward, mm) and call ``render_rays``. Scenes that can do better (a
panorama at infinity sampled from a texture, see ``panorama.py``) offer fast
paths the cameras use when present; every scene works through the plain
protocol.

Scenes are named in the rig file (``sim.scene``); ``SCENES`` maps names to
classes by import string so a scene living elsewhere (the light-section
reference scene) is only imported when asked for.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from foveate.system.errors import ConfigError
from foveate.system.registry import import_object

#: DDD17's six classes; class id = index. Scenes, label maps and boxes all use these ids.
CLASSES = ("flat", "construction+sky", "object", "nature", "human", "vehicle")
FLAT, CONSTRUCTION_SKY, OBJECT, NATURE, HUMAN, VEHICLE = range(6)

#: Scene name -> "module:Class". Classes define ``from_settings(seed, **settings)`` and ``from_dict(data)``.
SCENES: dict[str, str] = {
    "street": "foveate.hardware.sim.scenes:StreetScene",
    "parking_lot": "foveate.hardware.sim.scenes:ParkingLotScene",
    "plaza": "foveate.hardware.sim.scenes:PlazaScene",
    "light_section_reference": "foveate.hardware.sim.light_section.scene:LightSectionReferenceScene",
    "light_section_spheres": "foveate.hardware.sim.light_section.scene:LightSectionSpheresScene",
    "light_section_plane": "foveate.hardware.sim.light_section.scene:LightSectionPlaneScene",
}

SCENE_FILE_FORMAT = 1


@runtime_checkable
class Scene(Protocol):
    """The one method every scene implements (plus ``name``)."""

    name: str

    def render_rays(self, origin_mm: np.ndarray, dirs: np.ndarray, t_s: float, twin: Any) -> tuple[np.ndarray, np.ndarray]:
        """Intensity and class seen along rays.

        Args:
            origin_mm: (3,) ray origin in the rig frame (mm).
            dirs: (H, W, 3) unit ray directions in the rig frame.
            t_s: scene time in seconds (the rig clock).
            twin: the ``Twin`` (devices such as lasers are in ``twin.devices``); may be None.
        Returns:
            intensity (H, W) float32 in [0, 1] and labels (H, W) uint8 (class ids of ``CLASSES``).
        """
        ...


def scene_class(name: str, where: str = "sim.scene") -> type:
    """The class registered as ``name`` (or given as ``package.module:Class``)."""
    target = SCENES.get(name, name if ":" in name else None)
    if target is None:
        raise ConfigError(f"{where}: unknown scene '{name}' (expected one of: {', '.join(SCENES)}, or 'package.module:Class')")
    return import_object(target, f"{where} '{name}'")


def make_scene(name: str, seed: int = 0, where: str = "sim", **settings: Any):
    """Build scene ``name`` from a seed and its settings (deterministic)."""
    cls = scene_class(name, f"{where}.scene")
    try:
        return cls.from_settings(seed=seed, **settings)
    except TypeError as exc:
        raise ConfigError(f"{where}: scene '{name}' does not take these settings: {exc}") from None


def save_scene(scene: Any, path: str | Path) -> Path:
    """Write a scene (its complete generated layout, not just the seed) as JSON."""
    path = Path(path)
    data = {"format": SCENE_FILE_FORMAT, "scene": scene.name, "data": scene.to_dict()}
    path.write_text(json.dumps(data, indent=1, default=_jsonable) + "\n")
    return path


def load_scene(path: str | Path):
    """Read a scene written by ``save_scene``; ``ConfigError`` naming the file and key when malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: scene file not found") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level")
    for key in ("format", "scene", "data"):
        if key not in data:
            raise ConfigError(f"{path}: {key}: required key is missing")
    if data["format"] != SCENE_FILE_FORMAT:
        raise ConfigError(f"{path}: format: unsupported scene file format {data['format']!r} (expected {SCENE_FILE_FORMAT})")
    cls = scene_class(str(data["scene"]), f"{path}: scene")
    try:
        return cls.from_dict(data["data"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: data: malformed {data['scene']} scene: {exc}") from None


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
