"""Image model of light-section scenes: per-view ray casting, ambient light, speckle.

Per camera view the surfaces are ray-cast once (``cast_view``); per frame only
the pixels near the laser sheet are shaded (``LightSectionScene.stripe``), so a
1280 x 1024 stripe frame costs a few milliseconds. The stripe intensity at a
pixel is that of the surface point it sees::

    I = peak * power * albedo * cos(incidence) * (2000 mm / r) * exp(-s^2 / 2 sigma^2) * speckle

with ``s`` the point's signed distance to the sheet's centre plane and ``r`` its
distance from the (virtual) emitter; points outside the fan or shadowed from the
emitter get no laser light. Sampled at pixel centres: with the sheet a few
pixels wide this is the profile the optics would deliver.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from foveate.hardware.sim.light_section.surfaces import SceneGeometry

LIGHT_DIR = np.array([0.3, -0.8, -0.52]) / np.linalg.norm([0.3, -0.8, -0.52])  # room light from above-front
REF_DISTANCE_MM = 2000.0


@dataclass
class ViewHits:
    """Ray-cast result of one camera view (flattened pixels, row-major)."""

    shape: tuple[int, int]
    origin: np.ndarray  # (3,)
    t: np.ndarray  # (N,) float64 ray parameter (inf where nothing is hit)
    X32: np.ndarray  # (N, 3) float32 hit points (0 where nothing is hit), for the cheap sheet test
    normals: np.ndarray  # (N, 3) float32
    obj: np.ndarray  # (N,) int16 surface index, -1 none
    albedo: np.ndarray  # (N,) float32
    base: np.ndarray  # (N,) float32 ambient image
    labels: np.ndarray  # (H, W) uint8: surface index + 1, 0 where nothing is hit


def cast_view(geometry: SceneGeometry, origin: np.ndarray, dirs: np.ndarray, ambient: float = 0.12) -> ViewHits:
    """Ray-cast all pixels of a view. ``dirs`` (H, W, 3) unit directions from ``origin`` (3,), mm."""
    H, W = dirs.shape[:2]
    d = np.asarray(dirs, np.float64).reshape(-1, 3)
    o = np.asarray(origin, np.float64)
    t, nrm, obj = geometry.cast(o, d)
    hit = np.isfinite(t)
    X = np.where(hit[:, None], o + np.where(hit, t, 0.0)[:, None] * d, 0.0)
    alb = np.array([s.albedo for s in geometry.surfaces] + [0.0], np.float32)[obj]
    shade = 0.55 + 0.45 * np.clip(nrm @ LIGHT_DIR, 0.0, 1.0)
    base = np.where(hit, ambient * alb * shade, 0.02 * ambient).astype(np.float32)
    labels = (obj.astype(np.int32) + 1).astype(np.uint8).reshape(H, W)
    return ViewHits((H, W), o, t, X.astype(np.float32), nrm.astype(np.float32), obj, alb, base, labels)


class SpeckleField:
    """Spatially correlated multiplicative noise: unit-variance fields sampled at random offsets.

    A few smoothed Gaussian fields are drawn once; each frame takes one at a
    random offset and sign, which keeps the statistics (contrast, grain size)
    at a fraction of the cost of a fresh field per frame.
    """

    def __init__(self, shape: tuple[int, int], grain_px: float = 0.8, seed: int = 0, n_fields: int = 3, pad: int = 64):
        rng = np.random.default_rng(seed)
        H, W = shape
        self.pad = pad
        self.fields = []
        for _ in range(n_fields):
            f = rng.normal(size=(H + pad, W + pad)).astype(np.float32)
            if grain_px > 0:
                f = cv2.GaussianBlur(f, (0, 0), grain_px)
            f /= f.std()
            self.fields.append(f)

    def sample(self, rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        f = self.fields[int(rng.integers(len(self.fields)))]
        dy, dx = rng.integers(0, self.pad, 2)
        s = 1.0 if rng.random() < 0.5 else -1.0
        return s * f[rows + dy, cols + dx]
