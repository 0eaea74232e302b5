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
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    shape = x.shape
    n = x.size
    cols = 1024 if n > 1024 else max(n, 1)
    rows = -(-n // cols)
    mx = np.zeros(rows * cols, np.float32)
    my = np.zeros(rows * cols, np.float32)
    # Wrap in float64 first so large coordinates keep their fraction in float32.
    mx[:n] = np.mod(x.ravel(), _N)
    my[:n] = np.mod(y.ravel(), _N)
    out = cv2.remap(table, mx.reshape(rows, cols), my.reshape(rows, cols), interp, borderMode=cv2.BORDER_WRAP)
    return out.ravel()[:n].reshape(shape)


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
