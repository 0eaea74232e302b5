"""Latency histograms and counters of the search loop.

A histogram keeps fixed log-spaced bins (20 per decade from 100 ns to 100 s)
so recording a value is O(1) and memory stays flat however long the run;
percentiles are read from the bins (within 6 % of the true value) while
count, mean, min and max are exact.
"""

from __future__ import annotations

import math

import numpy as np

_LO, _HI, _PER_DECADE = 1e-7, 1e2, 20
_N = int(round(math.log10(_HI / _LO) * _PER_DECADE))
_EDGES = _LO * 10 ** (np.arange(_N + 1) / _PER_DECADE)


class LatencyHistogram:
    def __init__(self) -> None:
        self.counts = np.zeros(_N + 2, np.int64)  # [underflow, bins..., overflow]
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = 0.0

    def record(self, seconds: float) -> None:
        s = float(seconds)
        self.n += 1
        self.total += s
        self.min = min(self.min, s)
        self.max = max(self.max, s)
        if s < _LO:
            self.counts[0] += 1
        elif s >= _HI:
            self.counts[-1] += 1
        else:
            self.counts[1 + int(math.log10(s / _LO) * _PER_DECADE)] += 1

    def percentile(self, q: float) -> float:
        """Approximate ``q``-th percentile (0-100) in seconds: geometric middle of its bin."""
        if self.n == 0:
            return float("nan")
        rank = q / 100 * (self.n - 1)
        c = np.cumsum(self.counts)
        b = int(np.searchsorted(c, rank, side="right"))
        if b == 0:
            return self.min
        if b >= _N + 1:
            return self.max
        v = math.sqrt(_EDGES[b - 1] * _EDGES[b])
        return min(max(v, self.min), self.max)

    def summary_ms(self) -> dict:
        if self.n == 0:
            return {"count": 0}
        r = lambda v: round(v * 1e3, 4)  # noqa: E731
        return {"count": self.n, "mean": r(self.total / self.n), "p50": r(self.percentile(50)),
                "p90": r(self.percentile(90)), "p99": r(self.percentile(99)), "max": r(self.max), "min": r(self.min)}


class Histograms(dict):
    """name -> LatencyHistogram, created on first use."""

    def __missing__(self, key: str) -> LatencyHistogram:
        h = self[key] = LatencyHistogram()
        return h

    def summary_ms(self) -> dict:
        return {k: v.summary_ms() for k, v in sorted(self.items())}
