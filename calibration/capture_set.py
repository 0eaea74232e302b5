"""The capture format: take images once, fit many times.

A capture directory holds

- ``captures.csv`` with columns ``image,pose,theta_x_deg,theta_y_deg``:
  image paths relative to the directory; ``pose`` names a board placement
  (every image of one pose was taken without moving the board, at different
  mirror commands); commanded mechanical angles in degrees, ``theta_x_deg``
  for mirror 1 (nearest the camera), ``theta_y_deg`` for mirror 2. For a
  fixed camera (intrinsics) the angle columns may be left out. Optional
  columns ``measured_x_deg,measured_y_deg``: the galvo's position sensor at
  the middle of that image's exposure (what the mirrors really did); when
  present the fit uses them as the mirror angles. Several rows with the same
  ``pose`` and commands are repeated frames of one view: their corners and
  measured angles are averaged.
- ``board.yaml``: ``type: checkerboard``, ``cols``, ``rows`` (inner corners), ``square_mm``.
- ``camera.yaml`` (optional): known intrinsics ``fx, fy, cx, cy, width, height,
  dist: [k1, k2, p1, p2, k3]`` -- or a camera calibration file written by
  ``foveate calibrate intrinsics``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foveate.calibration.board import BoardSpec
from foveate.calibration.errors import CalibrationError
from foveate.calibration.galvo_geometry import PinholeCamera
from foveate.system.config import format_validation_error, read_yaml
from foveate.system.errors import ConfigError

CAPTURES_CSV = "captures.csv"
BOARD_YAML = "board.yaml"
CAMERA_YAML = "camera.yaml"
COLUMNS = ("image", "pose", "theta_x_deg", "theta_y_deg")
#: Optional: the galvo's position sensor at the middle of that image's exposure (deg), when the galvo records it.
MEASURED_COLUMNS = ("measured_x_deg", "measured_y_deg")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoardFile(_Strict):
    type: str = Field(pattern="^checkerboard$")
    cols: int = Field(ge=3)
    rows: int = Field(ge=3)
    square_mm: float = Field(gt=0)


class CameraFile(_Strict):
    fx: float = Field(gt=0)
    fy: float = Field(gt=0)
    cx: float
    cy: float
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    dist: list[float] = Field(default_factory=lambda: [0.0] * 5, min_length=5, max_length=5)


def validate(model: type[BaseModel], data: Any, source: str, prefix: tuple = ()) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {'.'.join(prefix) or 'top level'}: expected a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, model, prefix)) from None


def load_board(path: Path) -> BoardSpec:
    b = validate(BoardFile, read_yaml(path, "board file"), str(path))
    try:
        return BoardSpec(cols=b.cols, rows=b.rows, square_mm=b.square_mm, type=b.type)
    except CalibrationError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def camera_from_mapping(data: dict, source: str, prefix: tuple = ()) -> PinholeCamera:
    c = validate(CameraFile, data, source, prefix)
    K = np.array([[c.fx, 0.0, c.cx], [0.0, c.fy, c.cy], [0.0, 0.0, 1.0]])
    return PinholeCamera(K, c.width, c.height, np.asarray(c.dist, dtype=np.float64))


def camera_to_mapping(cam: PinholeCamera) -> dict:
    K = cam.K
    return {
        "fx": float(K[0, 0]), "fy": float(K[1, 1]), "cx": float(K[0, 2]), "cy": float(K[1, 2]),
        "width": int(cam.width), "height": int(cam.height),
        "dist": [float(v) for v in (list(np.ravel(cam.dist)) + [0.0] * 5)[:5]],
    }


def load_camera(path: Path) -> PinholeCamera:
    """Intrinsics from a plain ``camera.yaml`` or from a calibration file of kind ``camera``."""
    data = read_yaml(path, "camera file")
    if isinstance(data, dict) and "schema" in data:
        from foveate.calibration.calib_file import load_calibration

        return load_calibration(path, expect_kind="camera").camera
    return camera_from_mapping(data, str(path))


@dataclass(frozen=True)
class CaptureRow:
    image: str
    pose: str
    theta_x_deg: float
    theta_y_deg: float
    line: int  # line number in captures.csv, for messages
    measured_deg: tuple[float, float] | None = None  # position sensor at mid-exposure, when recorded


@dataclass
class CaptureSet:
    """A loaded capture directory (images are read lazily)."""

    root: Path
    board: BoardSpec
    rows: list[CaptureRow]
    camera: PinholeCamera | None = None
    has_angles: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def csv_path(self) -> Path:
        return self.root / CAPTURES_CSV

    def image_path(self, row: CaptureRow) -> Path:
        return self.root / row.image

    def read_image(self, row: CaptureRow) -> np.ndarray:
        path = self.image_path(row)
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise CalibrationError(f"{self.csv_path}: line {row.line}: cannot read image {path}")
        return img

    def poses(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.rows:
            seen.setdefault(r.pose, None)
        return list(seen)


def _parse_float(text: str, csv_path: Path, line: int, col: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise CalibrationError(f"{csv_path}: line {line}: column {col}: expected a number in degrees, got {text!r}") from None
    if not math.isfinite(v):
        raise CalibrationError(f"{csv_path}: line {line}: column {col}: expected a finite number, got {text!r}")
    return v


def _is_file(path: Path) -> bool:
    """``Path.is_file`` that says False for names the OS cannot even look up (too long, ...)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _check_csv_text(csv_path: Path) -> None:
    """UTF-8 text without NUL bytes (what the csv module needs), else one line naming the byte offset."""
    raw = csv_path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CalibrationError(f"{csv_path}: byte offset {exc.start}: not UTF-8 text "
                               f"(expected CSV with the header {','.join(COLUMNS)})") from None
    if "\x00" in text:
        raise CalibrationError(f"{csv_path}: byte offset {raw.index(0)}: NUL byte (expected CSV text)")


def load_capture_dir(root: str | Path, require_angles: bool = True) -> CaptureSet:
    """Read and validate a capture directory; every problem names the file and line."""
    root = Path(root)
    if not root.is_dir():
        raise CalibrationError(f"{root}: capture directory not found")
    csv_path = root / CAPTURES_CSV
    if not csv_path.is_file():
        raise CalibrationError(f"{csv_path}: not found (a capture directory needs {CAPTURES_CSV} and {BOARD_YAML})")
    board = load_board(root / BOARD_YAML)
    camera = load_camera(root / CAMERA_YAML) if (root / CAMERA_YAML).is_file() else None
    _check_csv_text(csv_path)
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise CalibrationError(f"{csv_path}: empty file (expected the header {','.join(COLUMNS)})") from None
        need = COLUMNS if require_angles else COLUMNS[:1]
        missing = [c for c in need if c not in header]
        if missing:
            raise CalibrationError(
                f"{csv_path}: line 1: missing column(s) {', '.join(missing)} (expected header {','.join(COLUMNS)})"
            )
        has_angles = all(c in header for c in COLUMNS[2:])
        given = [c for c in MEASURED_COLUMNS if c in header]
        if len(given) == 1:
            other = next(c for c in MEASURED_COLUMNS if c not in header)
            raise CalibrationError(f"{csv_path}: line 1: column {given[0]} without {other} (give both or neither)")
        has_measured = bool(given) and has_angles
        idx = {c: header.index(c) for c in COLUMNS + MEASURED_COLUMNS if c in header}
        rows: list[CaptureRow] = []
        seen: dict[str, int] = {}
        for line, rec in enumerate(reader, start=2):
            if not rec or all(not f.strip() for f in rec):
                continue
            if len(rec) != len(header):
                raise CalibrationError(f"{csv_path}: line {line}: expected {len(header)} fields, got {len(rec)}")
            image = rec[idx["image"]].strip()
            if not image:
                raise CalibrationError(f"{csv_path}: line {line}: column image is empty")
            if image in seen:
                raise CalibrationError(f"{csv_path}: line {line}: image {image!r} already listed on line {seen[image]}")
            seen[image] = line
            if not _is_file(root / image):
                raise CalibrationError(f"{csv_path}: line {line}: image {image[:120]!r} not found ({root / image})"[:400])
            pose = rec[idx["pose"]].strip() if "pose" in idx else image
            if not pose:
                raise CalibrationError(f"{csv_path}: line {line}: column pose is empty")
            tx = _parse_float(rec[idx["theta_x_deg"]], csv_path, line, "theta_x_deg") if has_angles else 0.0
            ty = _parse_float(rec[idx["theta_y_deg"]], csv_path, line, "theta_y_deg") if has_angles else 0.0
            measured = None
            if has_measured:
                measured = tuple(_parse_float(rec[idx[c]], csv_path, line, c) for c in MEASURED_COLUMNS)
            rows.append(CaptureRow(image, pose, tx, ty, line, measured))
    if not rows:
        raise CalibrationError(f"{csv_path}: no captures listed")
    meta_path = root / "capture.yaml"
    meta = read_yaml(meta_path, "capture metadata") if meta_path.is_file() else {}
    return CaptureSet(root, board, rows, camera, has_angles, meta if isinstance(meta, dict) else {})


class CaptureWriter:
    """Writes a capture directory incrementally (so an interrupted capture keeps what it took)."""

    def __init__(self, root: str | Path, board: BoardSpec, camera: PinholeCamera | None = None,
                 meta: dict[str, Any] | None = None, image_dir: str = "images", measured: bool = False) -> None:
        self.root = Path(root)
        if (self.root / CAPTURES_CSV).exists():
            raise CalibrationError(f"{self.root}: already holds a capture ({CAPTURES_CSV}); choose an empty --out folder")
        (self.root / image_dir).mkdir(parents=True, exist_ok=True)
        self.image_dir = image_dir
        (self.root / BOARD_YAML).write_text(yaml.safe_dump(board.as_dict(), sort_keys=False))
        if camera is not None:
            (self.root / CAMERA_YAML).write_text(yaml.safe_dump(camera_to_mapping(camera), sort_keys=False))
        if meta:
            (self.root / "capture.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        self._fh = (self.root / CAPTURES_CSV).open("w", newline="")
        self._csv = csv.writer(self._fh)
        self.measured = bool(measured)
        self._csv.writerow(COLUMNS + (MEASURED_COLUMNS if self.measured else ()))
        self._fh.flush()
        self.count = 0

    def add(self, image: np.ndarray, pose: str, theta_x_deg: float, theta_y_deg: float,
            measured_deg: tuple[float, float] | None = None) -> str:
        """Save one image; ``measured_deg`` (the position sensor at mid-exposure) when the writer records it."""
        if self.measured != (measured_deg is not None):
            raise ValueError("measured_deg must be given exactly when the writer was opened with measured=True")
        name = f"{self.image_dir}/{self.count:05d}_{pose}.png"
        if not cv2.imwrite(str(self.root / name), image):
            raise CalibrationError(f"{self.root / name}: could not write image")
        extra = [f"{measured_deg[0]:.7f}", f"{measured_deg[1]:.7f}"] if self.measured else []
        self._csv.writerow([name, pose, f"{theta_x_deg:.6f}", f"{theta_y_deg:.6f}", *extra])
        self._fh.flush()
        self.count += 1
        return name

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
