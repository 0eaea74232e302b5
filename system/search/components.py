"""Build the search loop's models and geometry from the rig file.

``models.detector`` / ``models.segmenter`` and ``calibration.search_geometry``
either name a file (a real model, a fitted calibration) or a Python class
(``backend: package.module:Class``, e.g. the twin's test doubles), so moving
from the twin's oracle to real models is a rig-file change. A class may
define ``from_rig(rig, settings: dict, where: str)``; otherwise it is called
with the settings as keyword arguments.

Without a geometry entry the loop uses the nominal model of the devices'
settings (``LinearGeometry``: twice the mechanical angle, pinhole wide
camera) and says so in the log.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from foveate.system.config import resolve_model_path
from foveate.system.errors import ConfigError
from foveate.system.model_files import verify_sha256
from foveate.system.registry import import_object
from foveate.system.search.geometry import LinearGeometry, SearchGeometry

log = logging.getLogger(__name__)


def _construct(cls, rig, settings: dict, where: str):
    if hasattr(cls, "from_rig"):
        return cls.from_rig(rig, dict(settings), where)
    try:
        return cls(**settings)
    except TypeError as exc:
        raise ConfigError(f"{where}.settings: {exc}") from None


def _load_model_file(kind: str, ref, rig, where: str):
    """A model file through the runtime of its package (``foveate.models.<kind>``'s ``load_runtime``)."""
    path = resolve_model_path(ref.path, rig.config.rig_dir)
    try:
        module = importlib.import_module(f"foveate.models.{kind}")
    except ImportError as exc:
        raise ConfigError(f"{where}.path: cannot import foveate.models.{kind}: {exc}") from None
    if ref.sha256 is not None:
        # The file the runtime will read (a package may swap a .pt for the .onnx beside it).
        pick = getattr(module, "runtime_file", None)
        loaded = Path(pick(path, ref.runtime)) if pick is not None else Path(path)
        if loaded != Path(path):
            raise ConfigError(f"{where}.sha256: the {ref.runtime} runtime reads {loaded}, not {path}: name that file "
                              "in 'path' so its sha256 is what gets checked")
        verify_sha256(loaded, ref.sha256, f"{where}.sha256")
    loader = getattr(module, "load_runtime", None)
    if loader is not None:
        return loader(Path(path), runtime=ref.runtime, **ref.settings)
    if kind == "sltnet":
        from foveate.models.sltnet.segmenter import SLTNetSegmenter

        return SLTNetSegmenter(Path(path), ref.runtime, **ref.settings)
    raise ConfigError(f"{where}.path: no runtime can load {kind} model files (foveate.models.{kind}.load_runtime "
                      "is missing); use 'backend:' instead")


def build_model(rig, key: str, required: bool, notes: dict | None = None):
    """The model ``models.<key>`` of the rig (detector, segmenter), or None when absent and not required.

    A missing model file with a ``fallback`` gives the fallback; ``notes[key]`` then says which file
    was missing (the run summary shows it).
    """
    ref = rig.config.models.get(key)
    where = f"{rig.config.source}: models.{key}"
    if ref is None:
        if required:
            raise ConfigError(f"{rig.config.source}: models.{key}: the search loop needs a {key} "
                              f"(a model file, or 'backend: package.module:Class')")
        return None
    missing = []
    while ref.path is not None and ref.fallback is not None:
        if resolve_model_path(ref.path, rig.config.rig_dir).is_file():
            break
        missing.append(str(ref.path))
        ref, where = ref.fallback, f"{where}.fallback"
    if missing:
        note = f"fallback: {', '.join(missing)} not found (no such weights shipped)"
        log.warning("models.%s: %s", key, note)
        if notes is not None:
            notes[key] = note
    if ref.backend is not None:
        return _construct(import_object(ref.backend, f"{where}.backend"), rig, ref.settings, where)
    kind = {"segmenter": "sltnet"}.get(key, key)
    return _load_model_file(kind, ref, rig, where)


def build_geometry(rig) -> SearchGeometry:
    """The rig's search geometry: ``calibration.search_geometry`` or the nominal model."""
    from foveate.system.config import ComponentRef

    cal = rig.config.calibration.get("search_geometry")
    where = f"{rig.config.source}: calibration.search_geometry"
    if isinstance(cal, ComponentRef):
        return _construct(import_object(cal.backend, f"{where}.backend"), rig, cal.settings, where)
    if cal is not None:
        path = cal if cal.is_absolute() else rig.config.rig_dir / cal
        try:
            module = importlib.import_module("foveate.calibration.wide_map")
            loader = getattr(module, "load_search_geometry")
        except (ImportError, AttributeError):
            raise ConfigError(f"{where}: calibration files cannot be loaded as a search geometry yet "
                              "(foveate.calibration.wide_map.load_search_geometry is missing)") from None
        return loader(path, rig)
    return nominal_geometry(rig)


def nominal_geometry(rig) -> SearchGeometry:
    """Twice-the-mechanical-angle model from the devices' sizes and fields of view (no calibration)."""
    galvo = rig.role("search_galvo")
    search = rig.role("search_camera")
    cfg = rig.config
    s_set = cfg.devices[cfg.device_by_role("search_camera")].settings
    hfov = s_set.get("hfov_deg")
    if hfov is None:
        raise ConfigError(f"{cfg.source}: calibration.search_geometry: missing, and the search camera's settings "
                          "have no hfov_deg to build a nominal geometry from")
    wide_name = cfg.device_by_role("wide_camera") or cfg.device_by_role("wide_events")
    if wide_name is not None:
        w_set = cfg.devices[wide_name].settings
        dev = rig.devices[wide_name]
        wide_wh = (getattr(dev, "width", w_set.get("width", 640)), getattr(dev, "height", w_set.get("height", 480)))
        wide_hfov = float(w_set.get("hfov_deg", 64.0))
    else:
        wide_wh, wide_hfov = (640, 480), 64.0
    log.warning("no calibration.search_geometry in %s: using the nominal geometry (2x mechanical angle)", cfg.source)
    return LinearGeometry(galvo.limits_deg, (search.width, search.height), float(hfov), wide_wh, wide_hfov)
