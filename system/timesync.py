"""Device clock → host clock: online offset and drift estimation, robust to outliers.

Every device with a clock of its own (the galvo controller's µs counter, a
GenICam camera's tick counter, an event camera's µs timestamps) gets a
``ClockSync`` that maps its time onto the host's injected clock::

    host_ns = device_ns + offset_ns + drift * (device_ns - ref_ns)

Two kinds of samples feed it:

* ``symmetric`` — a request/reply exchange: the device stamped its reply
  somewhere between the host's send and receive times. The sample is the
  midpoint, its uncertainty half the round trip; exchanges with a long round
  trip are discarded before fitting (the classic NTP filter).
* ``arrival`` — the host only knows when data *arrived*: ``host - device`` is
  the offset plus a non-negative, random transfer latency. The offset is the
  lower envelope of those differences, estimated by a min-filter over time
  buckets (Moon, Skelly & Towsley's lower-bound idea) and a robust line through
  the bucket minima. What it returns is offset + the *smallest* latency seen;
  a constant transfer latency is unobservable from arrival times alone.

Lines are fitted with Siegel's repeated medians (50 % breakdown point) and
refined by least squares on the inliers; the drift term is only estimated
once the samples span ``min_drift_span_s`` (short bursts would turn jitter
into wild slopes) and is clamped to ``max_drift_ppm``.

``match_triggers`` pairs trigger times seen on two clocks (the galvo
controller's trigger-out and the event camera's external-trigger events) and
fits the same line, for hardware-trigger alignment.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import siegelslopes

Mode = Literal["symmetric", "arrival"]


@dataclass(frozen=True)
class ClockFit:
    """``host = device + offset_ns + drift * (device - ref_ns)``; residuals are those of the inlier samples."""

    offset_ns: float
    drift: float  # dimensionless; drift_ppm = drift * 1e6
    ref_ns: int
    residual_ns: float  # RMS residual of the inliers
    n_samples: int
    n_inliers: int

    @property
    def drift_ppm(self) -> float:
        return self.drift * 1e6

    def to_host_ns(self, device_ns):
        d = np.asarray(device_ns, dtype=np.float64)
        out = d + self.offset_ns + self.drift * (d - self.ref_ns)
        return out if out.ndim else float(out)

    def to_device_ns(self, host_ns):
        h = np.asarray(host_ns, dtype=np.float64)
        out = (h - self.offset_ns + self.drift * self.ref_ns) / (1.0 + self.drift)
        return out if out.ndim else float(out)


def fit_clock(
    device_ns,
    host_ns,
    *,
    min_drift_span_ns: float = 1e9,
    max_drift_ppm: float = 500.0,
    outlier_k: float = 4.0,
    floor_ns: float = 100.0,
) -> ClockFit:
    """Robust line ``host - device = offset + drift * (device - ref)`` through sample pairs (ns).

    ``outlier_k`` robust standard deviations (with a floor of ``floor_ns``)
    separate inliers from outliers. Raises ``ValueError`` without samples.
    """
    d = np.asarray(device_ns, dtype=np.int64)
    h = np.asarray(host_ns, dtype=np.int64)
    if d.shape != h.shape or d.ndim != 1:
        raise ValueError(f"device_ns and host_ns must be 1-D of equal length, got {d.shape} and {h.shape}")
    n = d.shape[0]
    if n == 0:
        raise ValueError("fit_clock needs at least one sample")
    ref = int(d[0])
    x = (d - ref).astype(np.float64)
    y = (h - d).astype(np.float64)
    y0 = float(np.median(y))
    y = y - y0
    span = float(x.max() - x.min())
    fit_drift = n >= 3 and span >= min_drift_span_ns
    if fit_drift:
        slope, intercept = siegelslopes(y, x)
    else:
        slope, intercept = 0.0, float(np.median(y))
    limit = max_drift_ppm * 1e-6
    slope = float(np.clip(slope, -limit, limit))
    r = y - (intercept + slope * x)
    scale = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    inl = np.abs(r) <= max(outlier_k * scale, floor_ns)
    if inl.sum() >= 2:
        xi, yi = x[inl], y[inl]
        if fit_drift and float(xi.max() - xi.min()) >= min_drift_span_ns:
            slope, intercept = np.polyfit(xi, yi, 1)
            slope = float(np.clip(slope, -limit, limit))
            intercept = float(np.mean(yi - slope * xi))
        else:
            intercept = float(np.mean(yi - slope * xi))
        r = y - (intercept + slope * x)
    rms = float(np.sqrt(np.mean(r[inl] ** 2))) if inl.any() else float("nan")
    return ClockFit(y0 + float(intercept), float(slope), ref, rms, n, int(inl.sum()))


@dataclass
class _Sample:
    device_ns: int
    host_ns: int
    quality: float  # smaller is better: half round trip (symmetric) or host - device (arrival)


class ClockSync:
    """Online estimate of one device clock against the host clock.

    Keeps at most ``max_samples`` samples within the last ``window_s``; when
    full it halves the sample density by keeping the better of each adjacent
    pair, so the window covers a long span (good for drift) with the best
    exchanges (good for offset). Refits after ``refit_every`` new samples,
    and once past the first 16 fits at most every ``refit_interval_s`` of
    device time (a fit costs about a millisecond; a 2 kHz link must not pay
    it every few transactions). ``refit()`` and ``summary()`` fit at once.
    """

    def __init__(
        self,
        mode: Mode = "symmetric",
        *,
        max_samples: int = 128,
        window_s: float = 600.0,
        refit_every: int = 8,
        refit_interval_s: float = 0.1,
        min_drift_span_s: float = 1.0,
        max_drift_ppm: float = 500.0,
        arrival_buckets: int = 16,
    ) -> None:
        if mode not in ("symmetric", "arrival"):
            raise ValueError(f"mode must be 'symmetric' or 'arrival', got {mode!r}")
        if max_samples < 4:
            raise ValueError(f"max_samples must be >= 4, got {max_samples}")
        self.mode = mode
        self.max_samples = int(max_samples)
        self.window_ns = int(window_s * 1e9)
        self.refit_every = max(1, int(refit_every))
        self.min_drift_span_ns = min_drift_span_s * 1e9
        self.max_drift_ppm = float(max_drift_ppm)
        self.arrival_buckets = int(arrival_buckets)
        self._samples: deque[_Sample] = deque()
        self._min_interval_ns = 0
        self._since_fit = 0
        self._fit: ClockFit | None = None
        self._n_fits = 0
        self._fit_at_ns = 0
        self.refit_interval_ns = int(refit_interval_s * 1e9)
        self.n_added = 0

    # ------------------------------------------------------------------ input
    def add(self, device_ns: int, host_ns: int, uncertainty_ns: float = 0.0) -> None:
        """One sample; ``host_ns`` is the midpoint of the exchange (symmetric) or the arrival time."""
        device_ns, host_ns = int(device_ns), int(host_ns)
        quality = float(uncertainty_ns) if self.mode == "symmetric" else float(host_ns - device_ns)
        s = _Sample(device_ns, host_ns, quality)
        self.n_added += 1
        self._since_fit += 1
        buf = self._samples
        if buf and device_ns - buf[-1].device_ns < self._min_interval_ns and len(buf) > 1:
            if quality < buf[-1].quality:
                buf[-1] = s
        else:
            buf.append(s)
        while buf and device_ns - buf[0].device_ns > self.window_ns:
            buf.popleft()
        if len(buf) > self.max_samples:
            kept = [min(a, b, key=lambda q: q.quality) for a, b in zip(list(buf)[0::2], list(buf)[1::2])]
            if len(buf) % 2:
                kept.append(buf[-1])
            self._samples = deque(kept)
            span = self._samples[-1].device_ns - self._samples[0].device_ns
            self._min_interval_ns = max(self._min_interval_ns * 2, span // self.max_samples)
        if self._fit is None or (self._since_fit >= self.refit_every
                                 and (self._n_fits < 16 or device_ns - self._fit_at_ns >= self.refit_interval_ns)):
            self._refit()

    def add_exchange(self, device_ns: int, host_send_ns: int, host_recv_ns: int) -> None:
        """A request/reply exchange: the device stamped its reply between send and receive."""
        self.add(device_ns, (host_send_ns + host_recv_ns) // 2, (host_recv_ns - host_send_ns) / 2)

    # ------------------------------------------------------------------ output
    @property
    def n_samples(self) -> int:
        return len(self._samples)

    @property
    def fit(self) -> ClockFit | None:
        """The current line (refitted at most every ``refit_every`` samples), or None before the first sample."""
        if self._fit is None and self._samples:
            self._refit()
        return self._fit

    def refit(self) -> ClockFit | None:
        """Fit now, using every sample kept so far."""
        if self._samples:
            self._refit()
        return self._fit

    def to_host_ns(self, device_ns):
        fit = self.fit
        if fit is None:
            raise ValueError("ClockSync has no samples yet")
        return fit.to_host_ns(device_ns)

    def to_device_ns(self, host_ns):
        fit = self.fit
        if fit is None:
            raise ValueError("ClockSync has no samples yet")
        return fit.to_device_ns(host_ns)

    def uncertainty_ns(self) -> float:
        """Median half round trip of the kept symmetric samples (0 in arrival mode)."""
        if self.mode != "symmetric" or not self._samples:
            return 0.0
        return float(np.median([s.quality for s in self._samples]))

    def summary(self) -> dict:
        """JSON-able figures for status reports: offset, drift, residual and round-trip bound in µs."""
        fit = self.refit()
        if fit is None:
            return {"samples": 0}
        out = {
            "mode": self.mode,
            "samples": fit.n_samples,
            "inliers": fit.n_inliers,
            "offset_us": round(fit.offset_ns / 1e3, 3),
            "drift_ppm": round(fit.drift_ppm, 3),
            "residual_us": round(fit.residual_ns / 1e3, 3) if math.isfinite(fit.residual_ns) else None,
        }
        if self.mode == "symmetric":
            out["half_rtt_us"] = round(self.uncertainty_ns() / 1e3, 3)
        return out

    # ------------------------------------------------------------------ fitting
    def _refit(self) -> None:
        self._since_fit = 0
        self._n_fits += 1
        samples = list(self._samples)
        if samples:
            self._fit_at_ns = samples[-1].device_ns
        if not samples:
            self._fit = None
            return
        d = np.array([s.device_ns for s in samples], dtype=np.int64)
        h = np.array([s.host_ns for s in samples], dtype=np.int64)
        q = np.array([s.quality for s in samples], dtype=np.float64)
        kw = dict(min_drift_span_ns=self.min_drift_span_ns, max_drift_ppm=self.max_drift_ppm)
        if self.mode == "symmetric":
            # Discard exchanges with a long round trip: their midpoint says little.
            good = q <= max(3.0 * float(np.median(q)), float(q.min()) + 1_000.0)
            fit = fit_clock(d[good], h[good], **kw)
            self._fit = ClockFit(fit.offset_ns, fit.drift, fit.ref_ns, fit.residual_ns, len(samples), fit.n_inliers)
            return
        # arrival: lower envelope by min-filter over time buckets
        nb = max(1, min(self.arrival_buckets, len(samples)))
        edges = np.linspace(d.min(), d.max() + 1, nb + 1)
        idx = np.clip(np.searchsorted(edges, d, side="right") - 1, 0, nb - 1)
        members = [np.nonzero(idx == b)[0] for b in range(nb)]
        members = [m for m in members if m.size]
        y = (h - d).astype(np.float64)
        fit = None
        for _ in range(3):
            # Minimum per bucket of what the current line leaves over (first pass: of host - device);
            # detrending first keeps a drift across a wide bucket from biasing which sample is lowest.
            r = y if fit is None else y - (fit.offset_ns + fit.drift * (d - fit.ref_ns).astype(np.float64))
            lo = np.array([m[np.argmin(r[m])] for m in members])
            fit = fit_clock(d[lo], h[lo], **kw)
        # Residual of the envelope fit: how far the minima scatter about the line.
        self._fit = ClockFit(fit.offset_ns, fit.drift, fit.ref_ns, fit.residual_ns, len(samples), fit.n_inliers)


# ---------------------------------------------------------------------------- trigger alignment
@dataclass(frozen=True)
class TriggerMatch:
    """Pairs ``(i, j)`` of ``ref[i]`` and ``other[j]`` that are the same physical trigger, and the clock line."""

    pairs: np.ndarray  # (K, 2) int indices
    fit: ClockFit  # maps other-clock times to the ref clock (device = other, host = ref)
    unmatched_ref: int
    unmatched_other: int


def match_triggers(
    ref_ns,
    other_ns,
    *,
    tolerance_ns: float,
    max_offset_ns: float,
    min_drift_span_s: float = 0.1,
    max_drift_ppm: float = 500.0,
) -> TriggerMatch:
    """Match trigger times seen on two clocks (both sorted, ns) and fit ``other → ref``.

    The coarse offset is the mode of all pairwise differences within
    ``max_offset_ns`` (histogram with ``tolerance_ns`` bins); then each ref
    trigger takes its nearest other trigger within ``tolerance_ns`` under the
    current line, and the line is refitted (twice). Missing and spurious
    triggers on either side are tolerated and counted. With a strictly
    periodic trigger the offset is only defined modulo the period: keep
    ``max_offset_ns`` below half of it.
    """
    ref = np.sort(np.asarray(ref_ns, dtype=np.int64))
    oth = np.sort(np.asarray(other_ns, dtype=np.int64))
    if ref.size == 0 or oth.size == 0:
        raise ValueError("match_triggers needs triggers on both clocks")
    if not tolerance_ns > 0 or not max_offset_ns > 0:
        raise ValueError("tolerance_ns and max_offset_ns must be > 0")
    a, b = ref[:400], oth[:400]
    diffs = (b[None, :] - a[:, None]).ravel()
    diffs = diffs[np.abs(diffs) <= max_offset_ns]
    if diffs.size == 0:
        raise ValueError(f"no trigger pairs within max_offset_ns={max_offset_ns:g}")
    bins = np.floor(diffs / tolerance_ns).astype(np.int64)
    vals, counts = np.unique(bins, return_counts=True)
    best = vals[np.argmax(counts)]
    near = diffs[np.abs(bins - best) <= 1]
    offset = float(np.median(near))  # other - ref
    fit = ClockFit(-offset, 0.0, int(oth[0]), float("nan"), 0, 0)
    pairs = np.zeros((0, 2), dtype=np.int64)
    for _ in range(3):
        pred = fit.to_device_ns(ref.astype(np.float64))  # where each ref trigger should appear on the other clock
        j = np.clip(np.searchsorted(oth, pred), 1, oth.size - 1) if oth.size > 1 else np.zeros(ref.size, np.int64)
        if oth.size > 1:
            left_closer = np.abs(oth[j - 1] - pred) < np.abs(oth[j] - pred)
            j = np.where(left_closer, j - 1, j)
        err = np.abs(oth[j] - pred)
        ok = err <= tolerance_ns
        i_ok, j_ok = np.nonzero(ok)[0], j[ok]
        # one-to-one: keep the closest ref for each other index
        order = np.argsort(err[ok], kind="stable")
        _, first = np.unique(j_ok[order], return_index=True)
        keep = np.sort(order[first])
        pairs = np.stack([i_ok[keep], j_ok[keep]], axis=1)
        if pairs.shape[0] == 0:
            break
        fit = fit_clock(oth[pairs[:, 1]], ref[pairs[:, 0]], min_drift_span_ns=min_drift_span_s * 1e9,
                        max_drift_ppm=max_drift_ppm)
    return TriggerMatch(pairs, fit, int(ref.size - pairs.shape[0]), int(oth.size - pairs.shape[0]))
