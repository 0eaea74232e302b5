"""Small numba passes shared by the readers (compiled on first use, cached on disk)."""

from __future__ import annotations

from numba import njit


@njit(cache=True, nogil=True)
def first_outside(x, y, w, h):  # pragma: no cover - compiled
    """Index of the first event with ``x >= w`` or ``y >= h``, or -1 (one pass, no temporaries)."""
    for i in range(x.shape[0]):
        if x[i] >= w or y[i] >= h:
            return i
    return -1


@njit(cache=True, nogil=True)
def pack(out, x, y, t, p, t_add):  # pragma: no cover - compiled
    """Fill the structured ``out`` from four field arrays in one pass (``t + t_add``)."""
    ox = out["x"]
    oy = out["y"]
    ot = out["t"]
    op = out["p"]
    for i in range(out.shape[0]):
        ox[i] = x[i]
        oy[i] = y[i]
        ot[i] = t[i] + t_add
        op[i] = p[i]
