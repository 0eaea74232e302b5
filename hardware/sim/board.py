"""A checkerboard placed in the twin, rendered anti-aliased in front of the scene.

Inner corners ``cols x rows``; corner (i, j) is at board coordinates
``(i * square_mm, j * square_mm, 0)`` exactly like OpenCV's object points;
one extra square of the pattern surrounds the inner corners (so the outer
squares are full squares) and a white margin of one square surrounds that.
Square (a, b) (the one whose top-left corner is ``(a, b) * square_mm``,
a, b >= -1) is black when ``a + b`` is even, so the corner squares are black.
``T_wb`` maps board coordinates to the rig frame (mm).

Rendering intersects each pixel's ray with the board plane; pixels whose
footprint may hold an edge (near a square edge or the board border) are
supersampled ``ss x ss`` with their own sub-pixel rays, so edges are
anti-aliased without bias and corners land where the geometry says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from foveate.hardware.sim.scene import OBJECT

WHITE = 0.92
BLACK = 0.06


@dataclass(frozen=True)
class Board:
    T_wb: np.ndarray
    cols: int
    rows: int
    square_mm: float

    def __post_init__(self) -> None:
        T = np.asarray(self.T_wb, dtype=np.float64)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            raise ValueError(f"T_wb must be a finite 4x4 matrix, got shape {T.shape}")
        R = T[:3, :3]
        if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
            raise ValueError("T_wb must be a rigid motion (orthonormal rotation, det +1)")
        if self.cols < 2 or self.rows < 2:
            raise ValueError(f"a board needs at least 2 x 2 inner corners, got {self.cols} x {self.rows}")
        if not self.square_mm > 0:
            raise ValueError(f"square_mm must be > 0, got {self.square_mm}")

    def corners_world(self) -> np.ndarray:
        """(rows * cols, 3) inner corners in the rig frame, row-major like OpenCV's object points."""
        j, i = np.mgrid[0:self.rows, 0:self.cols]
        P = np.stack([i.ravel() * self.square_mm, j.ravel() * self.square_mm, np.zeros(i.size)], axis=1)
        return P @ self.T_wb[:3, :3].T + self.T_wb[:3, 3]

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) of the whole board including the white margin, board coordinates."""
        s = self.square_mm
        return (-2 * s, (self.cols + 1) * s, -2 * s, (self.rows + 1) * s)


def _intersect(board: Board, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Board coordinates (x, y) and ray parameter t of rays (..., 3) hitting the board plane."""
    R, p0 = board.T_wb[:3, :3], board.T_wb[:3, 3]
    n = R[:, 2]
    denom = dirs @ n
    with np.errstate(divide="ignore", invalid="ignore"):
        t = ((p0 - origin) @ n) / denom
    P = origin + dirs * t[..., None] - p0
    local = P @ R  # R^T (P - p0)
    return local[..., 0], local[..., 1], t


def _shade(board: Board, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intensity and hit mask of board coordinates."""
    s = board.square_mm
    x0, x1, y0, y1 = board.extent_mm
    hit = (t > 0) & (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    a = np.floor(x / s)
    b = np.floor(y / s)
    pattern = (a >= -1) & (a <= board.cols - 1) & (b >= -1) & (b <= board.rows - 1)
    black = pattern & (((a + b) % 2) == 0)
    return np.where(black, BLACK, WHITE).astype(np.float32), hit


def composite_board(board: Board, inten: np.ndarray, labels: np.ndarray, origin: np.ndarray, dirs: np.ndarray,
                    subpixel_rays: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], ss: int = 6) -> np.ndarray:
    """Draw ``board`` over ``inten``/``labels`` (H, W) in place; returns the coverage (H, W) float32.

    Args:
        origin, dirs: the pixel-centre rays (3,), (H, W, 3) in the rig frame.
        subpixel_rays: pixel positions (N, 2) -> (origin (3,), unit dirs (N, 3)), the camera's exact model.
        ss: supersampling per side for edge pixels.
    """
    H, W = inten.shape
    x, y, t = _intersect(board, origin, dirs)
    shade, hit = _shade(board, x, y, t)
    cover = hit.astype(np.float32)
    if not hit.any():
        return cover
    # Footprint of a pixel on the board, from neighbour differences.
    fx = np.maximum(np.abs(np.gradient(np.nan_to_num(x), axis=1)), np.abs(np.gradient(np.nan_to_num(x), axis=0)))
    fy = np.maximum(np.abs(np.gradient(np.nan_to_num(y), axis=1)), np.abs(np.gradient(np.nan_to_num(y), axis=0)))
    fp = np.maximum(fx, fy) * 1.5 + 1e-9
    s = board.square_mm
    x0, x1, y0, y1 = board.extent_mm
    dx_line = np.abs(x / s - np.round(x / s)) * s
    dy_line = np.abs(y / s - np.round(y / s)) * s
    near_border = (np.minimum(np.abs(x - x0), np.abs(x - x1)) < fp) | (np.minimum(np.abs(y - y0), np.abs(y - y1)) < fp)
    edge = ((dx_line < fp) | (dy_line < fp) | near_border) & np.isfinite(x) & np.isfinite(y)
    # Grow by one pixel so rays that miss at the centre but hit part of the pixel are sampled too.
    grown = edge | hit
    grown[1:, :] |= edge[:-1, :]
    grown[:-1, :] |= edge[1:, :]
    grown[:, 1:] |= edge[:, :-1]
    grown[:, :-1] |= edge[:, 1:]
    edge = grown & ~(hit & ~edge)
    vv, uu = np.nonzero(edge)
    if vv.size:
        off = (np.arange(ss) + 0.5) / ss - 0.5
        ou, ov = np.meshgrid(off, off)
        uv = np.stack([uu[:, None] + ou.ravel()[None, :], vv[:, None] + ov.ravel()[None, :]], axis=-1).reshape(-1, 2)
        o2, d2 = subpixel_rays(uv)
        xs, ys, ts = _intersect(board, o2, d2)
        sh, hs = _shade(board, xs, ys, ts)
        hs = hs.reshape(-1, ss * ss)
        sh = sh.reshape(-1, ss * ss)
        c = hs.mean(axis=1).astype(np.float32)
        mean_board = np.where(c > 0, (sh * hs).sum(axis=1) / np.maximum(hs.sum(axis=1), 1), 0.0)
        cover[vv, uu] = c
        shade[vv, uu] = mean_board
    m = cover > 0
    inten[m] = cover[m] * shade[m] + (1 - cover[m]) * inten[m]
    labels[cover >= 0.5] = OBJECT
    return cover
