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
def pack(out, x, y, t, p, t_add, w, h):  # pragma: no cover - compiled
    """Fill the structured ``out`` from four field arrays in one pass (``t + t_add``).

    Returns (first index with x >= w or y >= h, first index with p > 1), -1 when none.
    """
    ox = out["x"]
    oy = out["y"]
    ot = out["t"]
    op = out["p"]
    outside = -1
    bad_p = -1
    for i in range(out.shape[0]):
        xi = x[i]
        yi = y[i]
        pi = p[i]
        if (xi >= w or yi >= h or xi < 0 or yi < 0) and outside < 0:
            outside = i
        if pi > 1 and bad_p < 0:
            bad_p = i
        ox[i] = xi
        oy[i] = yi
        ot[i] = t[i] + t_add
        op[i] = pi
    return outside, bad_p


@njit(cache=True, nogil=True)
def first_descent(t):  # pragma: no cover - compiled
    """Index of the first ``t[i] < t[i - 1]``, or -1 when ``t`` is non-decreasing."""
    for i in range(1, t.shape[0]):
        if t[i] < t[i - 1]:
            return i
    return -1


@njit(cache=True, nogil=True)
def check_for_writer(x, y, t, p, w, h, last_t, need_sorted, allow_negative):  # pragma: no cover - compiled
    """First problem in a chunk to write: (code, index); code 0 none, 1 outside sensor,
    2 polarity > 1, 3 time goes back (vs the previous event or ``last_t``), 4 negative time."""
    prev = last_t
    for i in range(t.shape[0]):
        if x[i] >= w or y[i] >= h:
            return 1, i
        if p[i] > 1:
            return 2, i
        if t[i] < 0 and not allow_negative:
            return 4, i
        if need_sorted and t[i] < prev:
            return 3, i
        prev = t[i]
    return 0, -1
