"""Deterministic procedural noise for scene textures: a pure function of position and seed.

Random values live in a seeded 512 x 512 periodic table; lookups go through
``cv2.remap`` with wrap-around borders (one C call per octave), which is what
makes evaluating the static world on millions of texels affordable.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

_N = 512


@lru_cache(maxsize=16)
def _table(seed: int) -> np.ndarray:
    return np.random.default_rng(int(seed) & 0xFFFFFFFF).random((_N, _N), dtype=np.float32)


def _remap(table: np.ndarray, x, y, interp: int) -> np.ndarray:
    """Sample the periodic table at (x, y) (table texel centres at integers) for any input shape."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.shape != y.shape:
        x, y = np.broadcast_arrays(x, y)
    shape = x.shape
    # remap takes 2-D float32 maps with coordinates well inside +-32767: wrap large ones first (in float64,
    # so their fraction survives), and fold other shapes into rows of 1024.
    if max(float(np.abs(x).max(initial=0)), float(np.abs(y).max(initial=0))) > 30000.0:
        x = np.mod(x, _N)
        y = np.mod(y, _N)
    mx = x.astype(np.float32)
    my = y.astype(np.float32)
    if mx.ndim != 2 or mx.shape[1] > 30000 or mx.shape[0] > 30000:
        n = mx.size
        cols = 1024 if n > 1024 else max(n, 1)
        rows = -(-n // cols)
        fx = np.zeros(rows * cols, np.float32)
        fy = np.zeros(rows * cols, np.float32)
        fx[:n] = mx.ravel()
        fy[:n] = my.ravel()
        out = cv2.remap(table, fx.reshape(rows, cols), fy.reshape(rows, cols), interp, borderMode=cv2.BORDER_WRAP)
        return out.ravel()[:n].reshape(shape)
    return cv2.remap(table, mx, my, interp, borderMode=cv2.BORDER_WRAP)


def hash01(ix, iy, seed: int) -> np.ndarray:
    """Uniform [0, 1) value per integer lattice point (periodic every 512 cells)."""
    return _remap(_table(seed), ix, iy, cv2.INTER_NEAREST)


def value_noise(x, y, seed: int) -> np.ndarray:
    """Smooth value noise in [0, 1) with unit lattice spacing (bilinear between lattice values)."""
    return _remap(_table(seed), x, y, cv2.INTER_LINEAR)


def fbm(x, y, seed: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of ``octaves`` value-noise octaves, in [0, 1)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    total = None
    amp, norm, f = 1.0, 0.0, 1.0
    for k in range(octaves):
        n = np.float32(amp) * value_noise(x * f, y * f, seed + 101 * k)
        total = n if total is None else total + n
        norm += amp
        amp *= 0.5
        f *= 2.0
    return total / np.float32(norm)
