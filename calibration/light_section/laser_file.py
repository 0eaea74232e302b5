"""Laser calibration files: the dynamic laser model plus its residuals, as versioned YAML.

::

    schema: foveate-laser-calibration/1
    kind: laser_galvo
    created: '2026-11-25T19:00:00Z'
    software: foveate 0.1.0
    source: {observations: 135, boards: 15, ...}
    frame: world frame of the camera-galvo model (mm)
    laser:
      sheet_normal0: [0, 0, 1]
      sheet_d0_mm: 980.0
      mirror: {axis_point_mm: [...], axis_dir: [...], normal0: [...], surface_offset_mm: 0, gain: 1, offset_deg: 0}
    residuals: {rms_mm: ..., median_abs_mm: ..., max_abs_mm: ..., points: ..., per_angle: [...], planes: [...]}
    joint: {...}   # present after a joint refinement

The header follows the calibration files of ``foveate.calibration.calib_file``
(same keys, its own schema name since it holds another kind). Loading
validates every key and names the file and key of a mistake.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from foveate.calibration.light_section.laser_model import DynamicLaser
from foveate.system import __version__
from foveate.system.config import format_validation_error
from foveate.system.config import read_yaml
from foveate.system.errors import ConfigError

SCHEMA = "foveate-laser-calibration/1"
KIND = "laser_galvo"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _vec3(v):
    arr = np.asarray(v, dtype=np.float64)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"expected 3 finite numbers, got {v!r}")
    return [float(x) for x in arr]


class MirrorBlock(_Strict):
    axis_point_mm: list[float]
    axis_dir: list[float]
    normal0: list[float]
    surface_offset_mm: float = 0.0
    gain: float = Field(1.0, gt=0)
    offset_deg: float = 0.0

    _check = field_validator("axis_point_mm", "axis_dir", "normal0")(lambda cls, v: _vec3(v))


class LaserBlock(_Strict):
    sheet_normal0: list[float]
    sheet_d0_mm: float
    mirror: MirrorBlock

    _check = field_validator("sheet_normal0")(lambda cls, v: _vec3(v))


class LaserFile(_Strict):
    schema_: str = Field(alias="schema")
    kind: str
    created: str = ""
    software: str = ""
    source: dict[str, Any] = Field(default_factory=dict)
    frame: str = ""
    laser: LaserBlock
    residuals: dict[str, Any] = Field(default_factory=dict)
    joint: dict[str, Any] | None = None
    notes: list[str] = Field(default_factory=list)


def _plain(o: Any) -> Any:
    """numpy scalars and arrays -> plain Python, for safe YAML."""
    if isinstance(o, dict):
        return {str(k): _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_plain(v) for v in o]
    if isinstance(o, np.ndarray):
        return _plain(o.tolist())
    if isinstance(o, np.generic):
        return o.item()
    return o


def save_laser_calibration(path: str | Path, model: DynamicLaser, residuals: dict | None = None,
                           joint: dict | None = None, frame: str = "world frame of the camera-galvo model (mm)",
                           notes: list[str] | None = None, source: dict | None = None) -> Path:
    path = Path(path)
    data = {
        "schema": SCHEMA,
        "kind": KIND,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software": f"foveate {__version__}",
        "source": source or {},
        "frame": frame,
        "laser": model.to_dict(),
        "residuals": residuals or {},
    }
    if joint is not None:
        data["joint"] = joint
    if notes:
        data["notes"] = list(notes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=None, width=120))
    return path


def load_laser_calibration(path: str | Path) -> tuple[DynamicLaser, dict]:
    """The model and the whole file's content (residuals, joint block) from a laser calibration file."""
    path = Path(path)
    data = read_yaml(path, "laser calibration file")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if data.get("schema") != SCHEMA:
        raise ConfigError(f"{path}: schema: expected '{SCHEMA}', got {data.get('schema')!r}")
    if data.get("kind") != KIND:
        raise ConfigError(f"{path}: kind: expected '{KIND}', got {data.get('kind')!r}")
    try:
        f = LaserFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc, LaserFile)) from None
    return DynamicLaser.from_dict(f.laser.model_dump()), data
