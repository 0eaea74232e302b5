"""Calibration files: versioned YAML with units, residual statistics and provenance.

Every file has the same header::

    schema: foveate-calibration/1
    kind: camera | galvo_camera | event_alignment | wide_map
    created: 2026-11-25T18:40:00Z        # UTC
    software: foveate 0.1.0
    source: {captures: /path/to/dir, images: 270, poses: 30, captures_sha256: ...}
    residuals: {rms_px: ..., ...}

followed by the parameters of its kind; every key carries its unit in its
name (``_mm``, ``_deg``, ``_px``) or is dimensionless (gains, unit vectors,
distortion coefficients). Loading validates everything and names the file
and key of the first problem.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from foveate.calibration.capture_set import CameraFile, camera_from_mapping, camera_to_mapping, validate
from foveate.system.config import read_yaml
from foveate.calibration.galvo_geometry import GalvoCamera, Mirror, PinholeCamera
from foveate.system import __version__
from foveate.system.errors import ConfigError
from foveate.system.model_files import file_sha256  # noqa: F401 - one SHA-256 of files (provenance)

SCHEMA = "foveate-calibration/1"
KINDS = ("camera", "galvo_camera", "event_alignment", "wide_map")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _unit3(v: list[float]) -> list[float]:
    a = np.asarray(v, dtype=float)
    n = float(np.linalg.norm(a))
    if abs(n - 1.0) > 1e-6:
        raise ValueError(f"expected a unit vector, got length {n:.6g}")
    return list(a / n)


class MirrorModel(_Strict):
    axis_point_mm: list[float] = Field(min_length=3, max_length=3, description="a point on the rotation axis")
    axis_dir: list[float] = Field(min_length=3, max_length=3, description="unit direction of the axis")
    normal0: list[float] = Field(min_length=3, max_length=3, description="unit mirror normal at angle 0")
    surface_offset_mm: float = 0.0
    gain: float = Field(gt=0, description="mechanical degrees per commanded degree")
    offset_deg: float = 0.0

    @field_validator("axis_dir", "normal0")
    @classmethod
    def _check_unit(cls, v: list[float]) -> list[float]:
        return _unit3(v)

    def mirror(self) -> Mirror:
        return Mirror(np.array(self.axis_point_mm), np.array(self.axis_dir), np.array(self.normal0),
                      self.surface_offset_mm, self.gain, self.offset_deg)

    @staticmethod
    def of(m: Mirror) -> dict:
        return {
            "axis_point_mm": [round(float(v), 6) for v in m.axis_point],
            "axis_dir": [float(v) for v in m.axis_dir],
            "normal0": [float(v) for v in m.normal0],
            "surface_offset_mm": round(float(m.surface_offset_mm), 6),
            "gain": float(m.gain),
            "offset_deg": float(m.offset_deg),
        }


class Header(BaseModel):
    model_config = ConfigDict(extra="allow")
    schema_: str = Field(alias="schema")
    kind: Literal["camera", "galvo_camera", "event_alignment", "wide_map"]
    created: str
    software: str = ""
    source: dict[str, Any] = Field(default_factory=dict)
    residuals: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class CameraCalibration(Header):
    model_config = ConfigDict(extra="forbid")
    camera: CameraFile
    coverage: dict[str, Any] = Field(default_factory=dict)


class GalvoCalibration(Header):
    model_config = ConfigDict(extra="forbid")
    frame: str = ""
    camera: CameraFile
    mirror1: MirrorModel
    mirror2: MirrorModel
    T_cw: list[list[float]] = Field(min_length=4, max_length=4, description="world -> real camera, mm")
    uncertainty: dict[str, float] = Field(default_factory=dict)
    not_determined: list[str] = Field(default_factory=list)
    weakly_determined: list[str] = Field(default_factory=list)
    limits_deg: list[list[float]] | None = None

    @field_validator("T_cw")
    @classmethod
    def _rigid(cls, v):
        T = np.asarray(v, dtype=float)
        if T.shape != (4, 4):
            raise ValueError(f"expected a 4x4 matrix, got shape {T.shape}")
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0 or not np.allclose(T[3], [0, 0, 0, 1]):
            raise ValueError("expected a rigid transform (orthonormal rotation with det +1, last row 0 0 0 1)")
        return v


class EventAlignmentCalibration(Header):
    model_config = ConfigDict(extra="forbid")
    event_camera: CameraFile
    frame_camera: CameraFile
    R_fe: list[list[float]] = Field(description="rotation event-camera frame -> frame-camera frame")
    t_fe_mm: list[float] = Field(min_length=3, max_length=3)
    depth_mm: float | None = Field(default=None, gt=0, description="depth at which the pixel map is exact")


class WideMapCalibration(Header):
    model_config = ConfigDict(extra="forbid")
    wide_camera: str = ""
    search_camera: str = ""
    degree: int = Field(ge=1, le=5)
    forward: dict[str, Any]  # polynomial command -> wide pixel
    inverse: dict[str, Any]  # polynomial wide pixel -> command
    limits_deg: list[list[float]]
    wide_size: list[int] = Field(min_length=2, max_length=2)


MODELS: dict[str, type[Header]] = {
    "camera": CameraCalibration,
    "galvo_camera": GalvoCalibration,
    "event_alignment": EventAlignmentCalibration,
    "wide_map": WideMapCalibration,
}


@dataclass
class LoadedCalibration:
    path: Path
    kind: str
    data: Header

    @property
    def camera(self) -> PinholeCamera:
        cam = getattr(self.data, "camera", None)
        if cam is None:
            raise ConfigError(f"{self.path}: a calibration of kind {self.kind!r} has no 'camera' section")
        return camera_from_mapping(cam.model_dump(), str(self.path), ("camera",))

    @property
    def galvo(self) -> GalvoCamera:
        d = self.data
        if not isinstance(d, GalvoCalibration):
            raise ConfigError(f"{self.path}: kind is {self.kind!r}, expected 'galvo_camera'")
        return GalvoCamera(self.camera, d.mirror1.mirror(), d.mirror2.mirror(), np.asarray(d.T_cw, dtype=float))


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def header(kind: str, source: dict[str, Any], residuals: dict[str, Any], notes: list[str] | None = None) -> dict:
    return {
        "schema": SCHEMA,
        "kind": kind,
        "created": now_utc(),
        "software": f"foveate {__version__}",
        "source": source,
        "residuals": residuals,
        "notes": list(notes or []),
    }


def save_calibration(path: str | Path, data: dict) -> Path:
    """Validate ``data`` against its kind's schema, then write it as YAML."""
    path = Path(path)
    _validate(data, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=None, width=120)
    path.write_text(text)
    return path


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _validate(data: Any, source: str, expect_kind: str | None = None) -> Header:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    schema = data.get("schema")
    if schema is None:
        raise ConfigError(f"{source}: schema: required key is missing (expected '{SCHEMA}')")
    if schema != SCHEMA:
        raise ConfigError(f"{source}: schema: unsupported version {schema!r} (this foveate reads '{SCHEMA}')")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in MODELS:
        raise ConfigError(f"{source}: kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if expect_kind is not None and kind != expect_kind:
        raise ConfigError(f"{source}: kind: expected {expect_kind!r}, got {kind!r}")
    return validate(MODELS[kind], _plain(data), source)


def load_calibration(path: str | Path, expect_kind: str | None = None) -> LoadedCalibration:
    """Read and validate a calibration file; ``ConfigError`` naming the file and key on any problem."""
    path = Path(path)
    data = read_yaml(path, "calibration file")
    model = _validate(data, str(path), expect_kind)
    return LoadedCalibration(path, model.kind, model)


def camera_section(cam: PinholeCamera) -> dict:
    return camera_to_mapping(cam)
