"""argparse types for numeric options: a bad value is argparse's one-line usage error, never a traceback
or a run that cannot end (``--seconds inf``)."""

from __future__ import annotations

import argparse
import math


def _number(text: str, cast, expected: str, ok) -> float | int:
    try:
        value = cast(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (durations, windows, sizes)."""
    return _number(text, float, "a finite number > 0", lambda v: v > 0)


def nonnegative_float(text: str) -> float:
    """A finite number >= 0."""
    return _number(text, float, "a finite number >= 0", lambda v: v >= 0)


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, threads, sensor sizes)."""
    return _number(text, int, "an integer >= 1", lambda v: v >= 1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


def size_hw(text: str) -> tuple[int, int]:
    """``HxW`` (e.g. ``200x352``): a network input size, both multiples of 8 (as SLTNet needs)."""
    parts = text.lower().split("x")
    try:
        h, w = (int(v) for v in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 200x352, got {text!r}") from None
    if h < 8 or w < 8 or h % 8 or w % 8:
        raise argparse.ArgumentTypeError(f"expected HxW with both multiples of 8, got {text!r}")
    return h, w
