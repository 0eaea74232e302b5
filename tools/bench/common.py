"""Shared pieces of benchmarks: timing, machine description, result rows."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from datetime import date
from typing import Callable


@dataclass
class Row:
    """One measured figure; ``ratio`` compares with a baseline measured in the same run."""

    benchmark: str
    metric: str
    value: float
    unit: str
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {date.today().isoformat()}"


def best_rate(fn: Callable[[], int], repeats: int = 3, min_time_s: float = 0.5) -> float:
    """Items per second of ``fn`` (which returns the items it processed); best of ``repeats`` runs."""
    best = 0.0
    for _ in range(repeats):
        n = 0
        t0 = time.perf_counter()
        while True:
            n += fn()
            dt = time.perf_counter() - t0
            if dt >= min_time_s:
                break
        best = max(best, n / dt)
    return best
