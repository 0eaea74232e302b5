"""A checkerboard placed in the twin, rendered anti-aliased in front of the scene.

Inner corners ``cols x rows``; corner (i, j) is at board coordinates
``(i * square_mm, j * square_mm, 0)`` exactly like OpenCV's object points;
one extra square of the pattern surrounds the inner corners (so the outer
squares are full squares) and a white margin of one square surrounds that.
Square (a, b) (the one whose top-left corner is ``(a, b) * square_mm``,
a, b >= -1) is black when ``a + b`` is even, so the corner squares are black.
``T_wb`` maps board coordinates to the rig frame (mm).

Rendering intersects the rays through every pixel's corners with the board
plane; pixels whose four corners do not all fall in one square (those crossed
by a square edge or the board border) are supersampled ``ss x ss`` with their
own sub-pixel rays, so edges are anti-aliased without bias and corners land
where the geometry says; every other pixel takes its square's value exactly.
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


def _region(board: Board, x: np.ndarray, y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Region of board coordinates (int64): -1 off the board, 0 the white margin, 1 + k for pattern square k.

    Every region is convex (a square, the margin's inside is never tested alone: a
    pixel is uniform only when all four of its corners share one region).
    """
    s = board.square_mm
    x0, x1, y0, y1 = board.extent_mm
    with np.errstate(invalid="ignore"):
        hit = (t > 0) & (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
    a = np.floor(np.nan_to_num(x / s, nan=-9.0, posinf=-9.0, neginf=-9.0))
    b = np.floor(np.nan_to_num(y / s, nan=-9.0, posinf=-9.0, neginf=-9.0))
    pattern = hit & (a >= -1) & (a <= board.cols - 1) & (b >= -1) & (b <= board.rows - 1)
    cell = 1 + (np.clip(a, -1, board.cols - 1) + 1) * (board.rows + 1) + np.clip(b, -1, board.rows - 1) + 1
    return np.where(pattern, cell, np.where(hit, 0, -1)).astype(np.int64)


def composite_board(board: Board, inten: np.ndarray, labels: np.ndarray,
                    subpixel_rays: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], ss: int = 6) -> np.ndarray:
    """Draw ``board`` over ``inten``/``labels`` (H, W) in place; returns the coverage (H, W) float32.

    Args:
        subpixel_rays: pixel positions (N, 2) -> (origin (3,), unit dirs (N, 3)) in the rig frame, the
            camera's exact model (pixel centres at integer positions).
        ss: supersampling per side for pixels that hold an edge.

    The rays through the pixel *corners* decide which pixels need supersampling:
    a pixel whose four corners fall in one region (one square, the margin, or
    off the board) lies wholly inside it (regions are convex and a pixel's
    footprint is a convex quadrilateral to far below a pixel), so its value is
    exact without samples. Only pixels crossed by a square edge or the board's
    border (a few in ten of the board's pixels) are sampled ``ss x ss``.
    """
    H, W = inten.shape
    cu, cv = np.meshgrid(np.arange(W + 1) - 0.5, np.arange(H + 1) - 0.5)
    o, d = subpixel_rays(np.stack([cu.ravel(), cv.ravel()], axis=1))
    x, y, t = _intersect(board, o, d)
    reg = _region(board, x, y, t).reshape(H + 1, W + 1)
    r00 = reg[:-1, :-1]
    edge = (r00 != reg[:-1, 1:]) | (r00 != reg[1:, :-1]) | (r00 != reg[1:, 1:])
    inside = ~edge & (r00 >= 0)
    cover = inside.astype(np.float32)
    shade = np.full((H, W), WHITE, np.float32)
    k = r00 - 1  # pattern square index (a + 1) * (rows + 1) + (b + 1), black when a + b is even
    black = inside & (r00 > 0) & ((k // (board.rows + 1) + k % (board.rows + 1)) % 2 == 0)
    shade[black] = BLACK
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
