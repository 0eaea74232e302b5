"""Fixtures of the event-stream tests: real recordings (skipped when absent) and synthetic streams."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foveate.system.types import EVENT_DTYPE

#: Real Prophesee recordings, next to the repository (never copied into it).
REAL_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "events" / "real"


def real_file(name: str) -> Path:
    p = REAL_DIR / name
    if not p.exists():
        pytest.skip(f"real recording {name} not found under ../shared/data/events/real/ (shared data absent)")
    return p


@pytest.fixture
def real_evt3() -> Path:
    return real_file("evt3_sample.raw")


@pytest.fixture
def real_evt2() -> Path:
    return real_file("evt2_sample.raw")


def random_events(n: int, size=(640, 480), t_span_us: int = 2_000_000, seed: int = 0, t0: int = 0) -> np.ndarray:
    """Time-sorted random events with bursts of equal timestamps (as sensors produce)."""
    rng = np.random.default_rng(seed)
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"] = rng.integers(0, size[0], n)
    ev["y"] = rng.integers(0, size[1], n)
    ev["p"] = rng.integers(0, 2, n)
    t = np.sort(rng.integers(0, t_span_us, n)) + t0
    t[1::3] = t[0:-1:3][: len(t[1::3])]  # repeated timestamps
    ev["t"] = np.maximum.accumulate(t)
    return ev


@pytest.fixture
def events() -> np.ndarray:
    return random_events(20_000)


@pytest.fixture
def make_events():
    """The ``random_events(n, size, t_span_us, seed, t0)`` factory."""
    return random_events


@pytest.fixture
def real_path():
    """The ``real_file(name)`` lookup (skips when the shared recordings are absent)."""
    return real_file
