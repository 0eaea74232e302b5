"""Point-cloud output: binary PLY with per-point intensity and source, and preview pictures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from foveate.system.errors import FoveateError
from foveate.system.light_section.triangulate import POINT_DTYPE

_PLY_TYPES = {"<f8": "double", "<f4": "float", "<u4": "uint", "<u2": "ushort", "|u1": "uchar", "<i4": "int"}


def write_ply(path: str | Path, points: np.ndarray, comment: str = "foveate light-section scan, mm") -> Path:
    """Binary little-endian PLY of a ``POINT_DTYPE`` array: x y z (double), intensity, view, laser_deg, u, v."""
    path = Path(path)
    if points.dtype != POINT_DTYPE:
        raise FoveateError(f"write_ply: expected points of dtype {POINT_DTYPE}, got {points.dtype}")
    props = "".join(f"property {_PLY_TYPES[points.dtype[n].str]} {n}\n" for n in points.dtype.names)
    header = (f"ply\nformat binary_little_endian 1.0\ncomment {comment}\nelement vertex {points.size}\n{props}"
              "end_header\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(np.ascontiguousarray(points).tobytes())
    return path


def read_ply(path: str | Path) -> np.ndarray:
    """Read back a PLY written by ``write_ply`` (binary little-endian, one vertex element)."""
    path = Path(path)
    data = path.read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise FoveateError(f"{path}: not a PLY file (no 'ply' magic or 'end_header')")
    lines = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise FoveateError(f"{path}: only binary_little_endian PLY is supported")
    n = None
    fields = []
    rev = {v: k for k, v in _PLY_TYPES.items()}
    for ln in lines:
        parts = ln.split()
        if parts[:2] == ["element", "vertex"]:
            n = int(parts[2])
        elif parts and parts[0] == "property":
            if parts[1] not in rev:
                raise FoveateError(f"{path}: unsupported PLY property type '{parts[1]}'")
            fields.append((parts[2], rev[parts[1]]))
    if n is None:
        raise FoveateError(f"{path}: no 'element vertex' in the header")
    dt = np.dtype(fields)
    body = data[end + len(b"end_header\n"):]
    if len(body) < n * dt.itemsize:
        raise FoveateError(f"{path}: truncated: {n} vertices need {n * dt.itemsize} bytes, file has {len(body)}")
    return np.frombuffer(body, dt, count=n).copy()


def _colour_by(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    v = np.clip((values - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(v[:, None], cv2.COLORMAP_TURBO)[:, 0, :]


def cloud_views(points: np.ndarray, volume_mm, px_per_mm: float = 0.5) -> np.ndarray:
    """Front (x-y, coloured by depth) and top (x-z) orthographic views of the cloud, side by side (BGR)."""
    lo, hi = (np.asarray(v, float) for v in volume_mm)
    X = np.stack([points["x"], points["y"], points["z"]], axis=1) if points.size else np.zeros((0, 3))
    panels = []
    for (a, b), colour_axis, title in (((0, 1), 2, "front (x right, y down), colour = depth z"),
                                       ((0, 2), 1, "top (x right, z down), colour = height y")):
        W = int(round((hi[a] - lo[a]) * px_per_mm)) + 1
        H = int(round((hi[b] - lo[b]) * px_per_mm)) + 1
        img = np.full((H, W, 3), 255, np.uint8)
        if X.shape[0]:
            u = np.round((X[:, a] - lo[a]) * px_per_mm).astype(int)
            v = np.round((X[:, b] - lo[b]) * px_per_mm).astype(int)
            ok = (u >= 0) & (u < W) & (v >= 0) & (v < H)
            # Draw far points first so near ones stay on top.
            order = np.argsort(-X[ok, 2]) if colour_axis == 2 else np.argsort(X[ok, 1])
            col = _colour_by(X[ok, colour_axis], lo[colour_axis], hi[colour_axis])
            img[v[ok][order], u[ok][order]] = col[order]
        bar = np.full((26, W, 3), 255, np.uint8)
        cv2.putText(bar, title, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        panels.append(np.vstack([bar, img]))
    h = max(p.shape[0] for p in panels)
    panels = [np.vstack([p, np.full((h - p.shape[0], p.shape[1], 3), 255, np.uint8)]) for p in panels]
    return np.hstack([panels[0], np.full((h, 10, 3), 255, np.uint8), panels[1]])


def stripe_overlay(image: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """The stripe frame (grey, contrast-stretched) with the extracted centres in red."""
    img = image.astype(np.float32)
    hi = max(float(np.percentile(img, 99.9)), 1.0)
    g = np.clip(img * (255.0 / hi), 0, 255).astype(np.uint8)
    out = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    if uv.size:
        u = np.clip(np.round(uv[:, 0]).astype(int), 0, image.shape[1] - 1)
        v = np.clip(np.round(uv[:, 1]).astype(int), 0, image.shape[0] - 1)
        out[v, u] = (0, 0, 255)
    return out
