"""Frame camera ``folder``: a folder of images played as a camera on the rig clock.

Images are taken in natural sort order (``frame2.png`` before ``frame10.png``).
Their timestamps come from a CSV (``timestamps: stamps.csv`` with a header
``filename,t_ns`` / ``t_us`` / ``t_s``: the middle of each exposure) or from
``frame_rate_hz``. Frame k is exposed around ``t_open + (t_k - t_0)`` and can
be read once its exposure has ended; ``mode: every`` delivers every image,
``mode: live`` skips images whose time has passed (counted as dropped), like
a camera read too slowly.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from foveate.drivers.cameras.opencv import to_mono_or_bgr
from foveate.drivers.device import DeviceSettings
from foveate.drivers.frame_camera import FrameCamera
from foveate.system.clock import Clock
from foveate.system.context import RigContext
from foveate.system.errors import ConfigError, DeviceError, DeviceTimeoutError
from foveate.system.types import Frame

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm")
_UNITS = {"t_ns": 1, "t_us": 1_000, "t_ms": 1_000_000, "t_s": 1_000_000_000}


def natural_key(name: str) -> list:
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


def list_images(folder: Path, pattern: str | None = None) -> list[Path]:
    files = folder.glob(pattern) if pattern else (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted((p for p in files if p.is_file()), key=lambda p: natural_key(p.name))


def read_timestamps(path: Path) -> dict[str, int]:
    """``filename -> t_ns`` from a CSV with a ``filename`` column and one of t_ns, t_us, t_ms, t_s."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read timestamps: {exc.strerror}") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip() for h in next(rows, [])]
    unit = next((u for u in _UNITS if u in header), None)
    if "filename" not in header or unit is None:
        raise ConfigError(f"{path}: line 1: expected a header with 'filename' and one of {', '.join(_UNITS)}, "
                          f"got {','.join(header) or 'nothing'}")
    i_name, i_t = header.index("filename"), header.index(unit)
    out: dict[str, int] = {}
    for line_no, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            value = row[i_t].strip()
            if value.lstrip("-").isdigit():
                t = int(value) * _UNITS[unit]  # exact for integers, however large
            else:
                t = int(round(float(value) * _UNITS[unit]))
            out[row[i_name].strip()] = t
        except (IndexError, ValueError):
            raise ConfigError(f"{path}: line {line_no}: expected '<filename>,<{unit}>', got {','.join(row)!r}") from None
    return out


class ImageFolderSettings(DeviceSettings):
    path: str = Field(description="folder of images")
    pattern: str | None = Field(None, description="glob, e.g. 'cam0_*.png' (default: every image file)")
    timestamps: str | None = Field(None, description="CSV: filename,t_ns|t_us|t_ms|t_s (exposure middles)")
    frame_rate_hz: float | None = Field(None, gt=0)
    exposure_s: float = Field(0.005, gt=0)
    grayscale: bool = True
    mode: Literal["every", "live"] = "every"
    loop: bool = False

    @model_validator(mode="after")
    def _one_time_source(self) -> "ImageFolderSettings":
        if (self.timestamps is None) == (self.frame_rate_hz is None):
            raise ValueError("give exactly one of 'timestamps' (a CSV) or 'frame_rate_hz'")
        return self


class ImageFolderCamera(FrameCamera):
    """Images from a folder with timestamps; see the module docstring."""

    Settings = ImageFolderSettings

    def __init__(self, name: str, clock: Clock, path: str | Path, pattern: str | None = None,
                 timestamps: str | Path | None = None, frame_rate_hz: float | None = None, exposure_s: float = 0.005,
                 grayscale: bool = True, mode: str = "every", loop: bool = False) -> None:
        self.folder = Path(path)
        if not self.folder.is_dir():
            raise ConfigError(f"{name}: path: not a folder: {self.folder}")
        self.files = list_images(self.folder, pattern)
        if not self.files:
            looked = f"matching {pattern!r}" if pattern else f"with a suffix in {', '.join(IMAGE_SUFFIXES)}"
            raise ConfigError(f"{name}: path: no images in {self.folder} {looked}")
        if (timestamps is None) == (frame_rate_hz is None):
            raise ConfigError(f"{name}: give exactly one of 'timestamps' (a CSV) or 'frame_rate_hz'")
        if timestamps is not None:
            table = read_timestamps(Path(timestamps))
            missing = [f.name for f in self.files if f.name not in table]
            if missing:
                raise ConfigError(f"{timestamps}: no timestamp for {missing[0]} ({len(missing)} image(s) missing)")
            t = np.array([table[f.name] for f in self.files], dtype=np.int64)
            bad = np.nonzero(np.diff(t) <= 0)[0]
            if bad.size:
                raise ConfigError(f"{timestamps}: timestamps must increase in file order: {self.files[bad[0]].name} "
                                  f"-> {self.files[bad[0] + 1].name}")
        else:
            t = (np.arange(len(self.files)) * (1e9 / frame_rate_hz)).astype(np.int64)
        self.t_file_ns = t
        first = self._load(0, grayscale)
        super().__init__(name, clock, first.shape[1], first.shape[0], exposure_s=exposure_s)
        self.grayscale = grayscale
        self.mode = mode
        self.loop = loop
        self.period_ns = int(np.median(np.diff(t))) if len(t) > 1 else int(1e9 / (frame_rate_hz or 30.0))

    @classmethod
    def from_config(cls, name: str, settings: ImageFolderSettings, context: RigContext) -> "ImageFolderCamera":
        s = settings.model_dump()
        s["path"] = context.resolve(s["path"])
        if s["timestamps"]:
            s["timestamps"] = context.resolve(s["timestamps"])
        return cls(name=name, clock=context.clock, **s)

    def _load(self, i: int, grayscale: bool) -> np.ndarray:
        path = self.files[i]
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise DeviceError(f"{path}: cannot decode image")
        return to_mono_or_bgr(image, grayscale)

    def _do_open(self) -> None:
        self._t0_ns = self.clock.now_ns() - int(self.t_file_ns[0])
        self._next = 0
        self._lap_ns = 0

    def _frame_time(self, k: int) -> int:
        """Mid-exposure host time of the k-th delivered position (k may run past the end when looping)."""
        n = len(self.files)
        lap, i = divmod(k, n)
        span = int(self.t_file_ns[-1] - self.t_file_ns[0]) + self.period_ns
        return self._t0_ns + int(self.t_file_ns[i]) + lap * span

    def _do_read(self, timeout_s: float) -> Frame:
        n = len(self.files)
        half_ns = int(self._exposure_s * 1e9) // 2
        k = self._next
        if self.mode == "live":
            # skip to the newest image already fully exposed, like a camera that overwrote the others
            now = self.clock.now_ns()
            while (self.loop or k + 1 < n) and self._frame_time(k + 1) + half_ns <= now:
                k += 1
            self.frames_dropped += k - self._next
        if k >= n and not self.loop:
            raise DeviceTimeoutError(f"{self.name}: no more images in {self.folder} after {n} frames "
                                     "(set loop: true to play them again)")
        mid = self._frame_time(k)
        ready = mid + half_ns
        if ready - self.clock.now_ns() > timeout_s * 1e9:
            self.clock.sleep_ns(int(timeout_s * 1e9))
            raise DeviceTimeoutError(f"{self.name}: no frame within {timeout_s:g} s")
        self.clock.sleep_until_ns(ready)
        self._next = k + 1
        i = k % n
        image = self._load(i, self.grayscale)
        if image.shape[:2] != self.shape:
            raise DeviceError(f"{self.files[i]}: image is {image.shape[1]}x{image.shape[0]}, the folder's first image "
                              f"is {self.width}x{self.height}")
        return Frame(image, mid, self._exposure_s, k, self.name, device_t_ns=int(self.t_file_ns[i]),
                     meta={"file": self.files[i].name})

    def _do_status(self) -> dict[str, Any]:
        return {**super()._do_status(), "path": str(self.folder), "images": len(self.files), "next": self._next}
