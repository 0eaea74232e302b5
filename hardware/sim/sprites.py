"""Target silhouettes: humans (walking, four leg phases) and vehicles (side and front views).

A sprite is an alpha map (anti-aliased, drawn at 4x and area-averaged) plus a
part map (0 none, 1 main colour, 2 secondary, 3 dark, 4 bright) that each
target colours with its own palette, so one sprite serves every target of a
kind. Sprite coordinates: u in [0, 1] left to right, v in [0, 1] top to bottom
over the target's billboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

_SS = 4  # drawing supersampling


@dataclass(frozen=True)
class Sprite:
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    parts: np.ndarray  # (h, w) uint8 part ids

    @property
    def coverage(self) -> float:
        """Fraction of the billboard covered: the silhouette's area (for visible-fraction ground truth)."""
        return float(self.alpha.mean())


def _finish(canvas: np.ndarray, w: int, h: int) -> Sprite:
    alpha = cv2.resize((canvas > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    parts = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_NEAREST)
    # Edge texels whose nearest sample fell outside: borrow the dilated part id so colour never reads 0 under alpha.
    grown = cv2.dilate(parts, np.ones((3, 3), np.uint8))
    parts = np.where(parts == 0, grown, parts).astype(np.uint8)
    return Sprite(alpha, parts)


@lru_cache(maxsize=None)
def human(phase: int) -> Sprite:
    """Walking person, billboard 0.6 m x 1.8 m; ``phase`` 0..3 is the stride."""
    w, h = 48, 144
    W, H = w * _SS, h * _SS
    c = np.zeros((H, W), np.uint8)
    s = H / 72.0
    cx = W // 2
    # legs (part 2) swing with the phase
    swing = (0.0, 0.5, 1.0, 0.5)[phase % 4] * (1 if phase % 4 < 2 else -1)
    hip = (cx, int(40 * s))
    for sgn in (-1, 1):
        foot_x = int(cx + sgn * swing * 7 * s + (0 if swing else sgn * 1.5 * s))
        cv2.line(c, hip, (foot_x, int(69 * s)), 2, int(5 * s))
        cv2.line(c, (foot_x, int(69 * s)), (foot_x + int(3 * s), int(70 * s)), 3, int(3 * s))  # shoes
    # torso and arms (part 1)
    cv2.rectangle(c, (cx - int(5.5 * s), int(15 * s)), (cx + int(5.5 * s), int(42 * s)), 1, -1)
    for sgn in (-1, 1):
        hand = (int(cx + sgn * (6 * s) - sgn * swing * 4 * s), int(38 * s))
        cv2.line(c, (cx + sgn * int(5 * s), int(17 * s)), hand, 1, int(3.5 * s))
        cv2.circle(c, hand, int(1.8 * s), 4, -1)
    # head: skin (4) with hair (3)
    cv2.circle(c, (cx, int(8 * s)), int(5.5 * s), 4, -1)
    cv2.ellipse(c, (cx, int(6.5 * s)), (int(5.8 * s), int(4.5 * s)), 0, 180, 360, 3, -1)
    return _finish(c, w, h)


@lru_cache(maxsize=None)
def vehicle_side() -> Sprite:
    """Car seen from the side, facing right; billboard 4.5 m x 1.5 m."""
    w, h = 180, 60
    W, H = w * _SS, h * _SS
    c = np.zeros((H, W), np.uint8)
    s = W / 90.0
    body = np.array([[2, 24], [2, 15], [20, 13], [30, 3], [62, 3], [74, 13], [88, 15], [88, 24]], np.float64) * s
    cv2.fillPoly(c, [body.astype(np.int32)], 1)
    win = np.array([[24, 13], [32, 5], [46, 5], [46, 13]], np.float64) * s
    win2 = np.array([[49, 13], [49, 5], [60, 5], [70, 13]], np.float64) * s
    cv2.fillPoly(c, [win.astype(np.int32), win2.astype(np.int32)], 2)
    for x in (18, 72):
        cv2.circle(c, (int(x * s), int(24 * s)), int(5.6 * s), 3, -1)
        cv2.circle(c, (int(x * s), int(24 * s)), int(2.2 * s), 2, -1)
    cv2.rectangle(c, (int(84 * s), int(16 * s)), (int(88 * s), int(19 * s)), 4, -1)  # head light
    return _finish(c, w, h)


@lru_cache(maxsize=None)
def vehicle_front() -> Sprite:
    """Car seen from the front or back; billboard 1.9 m x 1.5 m."""
    w, h = 76, 60
    W, H = w * _SS, h * _SS
    c = np.zeros((H, W), np.uint8)
    s = W / 38.0
    cv2.rectangle(c, (int(1 * s), int(13 * s)), (int(37 * s), int(25 * s)), 1, -1)
    roof = np.array([[6, 13], [9, 3], [29, 3], [32, 13]], np.float64) * s
    cv2.fillPoly(c, [roof.astype(np.int32)], 1)
    glass = np.array([[8, 12], [10.5, 5], [27.5, 5], [30, 12]], np.float64) * s
    cv2.fillPoly(c, [glass.astype(np.int32)], 2)
    for x in (3, 30):
        cv2.rectangle(c, (int(x * s), int(16 * s)), (int((x + 5) * s), int(19 * s)), 4, -1)
        cv2.rectangle(c, (int(x * s), int(25 * s)), (int((x + 5) * s), int(29.5 * s)), 3, -1)
    cv2.rectangle(c, (int(12 * s), int(20 * s)), (int(26 * s), int(23 * s)), 3, -1)  # grille / plate
    return _finish(c, w, h)
