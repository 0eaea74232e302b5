"""Image model of light-section scenes: per-view ray casting, ambient light, speckle.

Per camera view the surfaces are ray-cast once (``cast_view``); per frame a
coarse grid of those hits finds the blocks the laser sheet crosses
(``sheet_blocks``) and only their pixels are re-cast and shaded
(``LightSectionScene.stripe``), so a 1280 x 1024 stripe frame costs a few
milliseconds. The stripe intensity at a
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


#: Pixel spacing of the coarse grid used to find the pixels near the laser sheet.
BLOCK_PX = 4


@dataclass
class ViewHits:
    """Ray-cast result of one camera view.

    ``grid`` holds the hit points (float64, NaN where nothing is hit) of every
    ``BLOCK_PX``-th pixel in both directions (plus the last row and column):
    a frame finds the blocks the sheet crosses there and re-casts only their pixels.
    """

    shape: tuple[int, int]
    origin: np.ndarray  # (3,)
    grid: np.ndarray  # (Hb, Wb, 3) hit points at rows ``grid_rows`` and columns ``grid_cols``
    grid_rows: np.ndarray
    grid_cols: np.ndarray
    base: np.ndarray  # (H * W,) float32 ambient image, row-major
    labels: np.ndarray  # (H, W) uint8: surface index + 1, 0 where nothing is hit


def _grid_index(n: int) -> np.ndarray:
    idx = np.arange(0, n, BLOCK_PX)
    return idx if idx[-1] == n - 1 else np.append(idx, n - 1)


def cast_view(geometry: SceneGeometry, origin: np.ndarray, dirs: np.ndarray, ambient: float = 0.12) -> ViewHits:
    """Ray-cast all pixels of a view. ``dirs`` (H, W, 3) unit directions from ``origin`` (3,), mm."""
    H, W = dirs.shape[:2]
    d = np.asarray(dirs, np.float64).reshape(-1, 3)
    o = np.asarray(origin, np.float64)
    t, nrm, obj = geometry.cast(o, d)
    hit = np.isfinite(t)
    alb = np.array([s.albedo for s in geometry.surfaces] + [0.0], np.float32)[obj]
    shade = 0.55 + 0.45 * np.clip(nrm @ LIGHT_DIR, 0.0, 1.0)
    base = np.where(hit, ambient * alb * shade, 0.02 * ambient).astype(np.float32)
    labels = (obj.astype(np.int32) + 1).astype(np.uint8).reshape(H, W)
    rows, cols = _grid_index(H), _grid_index(W)
    tg = t.reshape(H, W)[np.ix_(rows, cols)]
    dg = np.asarray(dirs, np.float64)[np.ix_(rows, cols)]
    grid = o + np.where(np.isfinite(tg), tg, np.nan)[..., None] * dg
    return ViewHits((H, W), o, grid, rows, cols, base, labels)


def sheet_blocks(hits: ViewHits, normal: np.ndarray, d: float, band_mm: float) -> np.ndarray:
    """Flat pixel indices of every grid block the plane ``normal . x = d`` may light (within ``band_mm``).

    A block counts when its corners' signed distances change sign or one lies
    within ``band_mm``; blocks with no surface at any corner are skipped.
    """
    s = hits.grid @ normal - d  # (Hb, Wb), NaN where nothing is hit
    a, b, c, e = s[:-1, :-1], s[:-1, 1:], s[1:, :-1], s[1:, 1:]
    with np.errstate(invalid="ignore"):
        lo = np.fmin(np.fmin(a, b), np.fmin(c, e))
        hi = np.fmax(np.fmax(a, b), np.fmax(c, e))
        near = (lo <= band_mm) & (hi >= -band_mm)
    bi, bj = np.nonzero(near)
    if bi.size == 0:
        return np.zeros(0, np.int64)
    H, W = hits.shape
    r0, r1 = hits.grid_rows[bi], hits.grid_rows[bi + 1]
    c0, c1 = hits.grid_cols[bj], hits.grid_cols[bj + 1]
    # Blocks are half-open [r0, r1) x [c0, c1), the last row and column closed: no pixel twice.
    k = np.arange(BLOCK_PX + 1)
    rr = r0[:, None] + k[None, :]
    cc = c0[:, None] + k[None, :]
    rok = (rr < r1[:, None]) | ((rr == r1[:, None]) & (r1[:, None] == H - 1))
    cok = (cc < c1[:, None]) | ((cc == c1[:, None]) & (c1[:, None] == W - 1))
    flat = rr[:, :, None] * W + cc[:, None, :]
    return flat[rok[:, :, None] & cok[:, None, :]]


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
