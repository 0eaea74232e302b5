"""Calibration targets: checkerboard geometry and sub-pixel corner detection.

Board coordinates follow OpenCV's object points: inner corner ``(i, j)``
(``i`` along ``cols``, ``j`` along ``rows``) sits at ``(i * square_mm,
j * square_mm, 0)``; corners are ordered row by row (``j`` outer, ``i``
inner), the order ``cv2.findChessboardCorners*`` returns for an upright board.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from foveate.calibration.errors import CalibrationError


@dataclass(frozen=True)
class BoardSpec:
    """A checkerboard with ``cols`` x ``rows`` inner corners and ``square_mm`` squares."""

    cols: int
    rows: int
    square_mm: float
    type: str = "checkerboard"

    def __post_init__(self) -> None:
        if self.type != "checkerboard":
            raise CalibrationError(f"board type {self.type!r} is not supported (expected 'checkerboard')")
        if self.cols < 3 or self.rows < 3:
            raise CalibrationError(f"board needs at least 3x3 inner corners, got {self.cols}x{self.rows}")
        if self.cols == self.rows:
            # A square board's orientation is ambiguous (detections may come back rotated).
            raise CalibrationError(
                f"board has {self.cols}x{self.rows} inner corners: use different counts (e.g. {self.cols}x{self.rows - 1}) "
                "so the detected corner order is unambiguous"
            )
        if not self.square_mm > 0:
            raise CalibrationError(f"board square_mm must be > 0, got {self.square_mm}")

    @property
    def n_corners(self) -> int:
        return self.cols * self.rows

    @property
    def size_mm(self) -> tuple[float, float]:
        """Outer size (width, height) of the printed pattern: one square more than the inner corners."""
        return ((self.cols + 1) * self.square_mm, (self.rows + 1) * self.square_mm)

    def object_points(self) -> np.ndarray:
        """(cols*rows, 3) float64 board-frame corner positions in mm, OpenCV order."""
        i, j = np.meshgrid(np.arange(self.cols), np.arange(self.rows))
        return np.stack([i.ravel(), j.ravel(), np.zeros(i.size)], axis=1) * float(self.square_mm)

    def as_dict(self) -> dict:
        return {"type": self.type, "cols": self.cols, "rows": self.rows, "square_mm": float(self.square_mm)}


def _canonical_order(corners: np.ndarray, board: BoardSpec) -> np.ndarray:
    """Make corner 0 the one nearest the image's top-left so every view of one board agrees.

    OpenCV may return a non-square board's grid reversed (rotated by 180 deg);
    the object points are symmetric under that, so we pick the order whose
    first corner is above-left of the last one. Boards are never viewed
    upside down in a galvo or intrinsics capture (the view rotates < 90 deg).
    """
    g = corners.reshape(board.rows, board.cols, 2)
    d = g[-1, -1] - g[0, 0]
    if d[0] + d[1] < 0:
        g = g[::-1, ::-1]
    return g.reshape(-1, 2)


def detect_corners(image: np.ndarray, board: BoardSpec) -> np.ndarray | None:
    """Inner corners of ``board`` in ``image`` (grey or BGR), (N, 2) float64 pixels, or None.

    Finds the grid with the sector-based detector (``findChessboardCornersSB``,
    robust on blurred images; the classic detector as fallback), then refines
    every corner with ``cornerSubPix`` (window ~0.4 square). Pixel convention: OpenCV's (centre of the
    top-left pixel is (0, 0)).
    """
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if grey.dtype != np.uint8:
        grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    size = (board.cols, board.rows)
    ok, corners = cv2.findChessboardCornersSB(grey, size, flags=cv2.CALIB_CB_ACCURACY | cv2.CALIB_CB_NORMALIZE_IMAGE)
    if not ok:
        ok, corners = cv2.findChessboardCorners(
            grey, size, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
        )
        if not ok:
            return None
    corners = np.asarray(corners, np.float32).reshape(-1, 1, 2)
    # Saddle-point refinement: on anti-aliased or slightly blurred boards it takes the
    # sector detector's ~0.35 px down to ~0.13 px (measured on rendered boards, tests).
    g = corners.reshape(board.rows, board.cols, 2)
    step = float(np.median(np.linalg.norm(np.diff(g, axis=1), axis=2)))
    half = int(np.clip(0.4 * step, 2, 7))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-4)
    corners = cv2.cornerSubPix(grey, corners, (half, half), (-1, -1), criteria)
    return _canonical_order(np.asarray(corners, dtype=np.float64).reshape(-1, 2), board)


class BoardRenderer:
    """Anti-aliased grey images (H, W) uint8 of a board seen by a pinhole camera; for tests and previews.

    White background, a black-cornered pattern of (cols + 1) x (rows + 1)
    squares. Each pixel is the mean of ``supersample``^2 sub-pixel samples
    whose rays (distortion removed with ``cv2.undistortPoints``) are computed
    once per camera and intersected with the board plane for each view.
    """

    def __init__(self, camera, supersample: int = 4) -> None:
        w, h, s = camera.width, camera.height, supersample
        u, v = np.meshgrid((np.arange(w * s) + 0.5) / s - 0.5, (np.arange(h * s) + 0.5) / s - 0.5)
        uv = np.stack([u.ravel(), v.ravel()], axis=1).reshape(-1, 1, 2)
        xy = cv2.undistortPoints(uv, camera.K, np.asarray(camera.dist, np.float64)).reshape(-1, 2)
        self.rays = np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1)
        self.size, self.s = (w, h), s

    def render(self, board: BoardSpec, T_cb: np.ndarray, noise_std: float = 0.0, rng=None) -> np.ndarray:
        """Image of ``board`` at pose ``T_cb`` (4x4 board -> camera, mm)."""
        R, t = T_cb[:3, :3], T_cb[:3, 3]
        nb = R[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            lam = (nb @ t) / (self.rays @ nb)
        Pb = (self.rays * lam[:, None] - t) @ R
        q = Pb[:, :2] / board.square_mm + 1.0  # square units from the pattern's outer corner
        inside = (q[:, 0] >= 0) & (q[:, 0] < board.cols + 1) & (q[:, 1] >= 0) & (q[:, 1] < board.rows + 1) & (lam > 0)
        black = ((np.floor(q[:, 0]) + np.floor(q[:, 1])) % 2 == 0) & inside
        (w, h), s = self.size, self.s
        img = np.where(black, 20.0, 235.0).reshape(h, s, w, s).mean(axis=(1, 3))
        if noise_std > 0:
            img = img + (rng or np.random.default_rng()).normal(0, noise_std, img.shape)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

