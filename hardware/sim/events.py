"""DVS pixel-array emulation: log-intensity frames in, events in the project dtype out.

Model (per pixel, as in ESIM / v2e, simplified where noted):

* Each pixel remembers a reference log intensity ``ref``; it fires an ON
  (OFF) event when ``log I - ref`` rises above ``C_on`` (falls below
  ``-C_off``). Thresholds differ per pixel: ``C ~ N(C_nominal,
  threshold_sigma)`` drawn once from the seed (mismatch), clipped to a floor.
* Between two rendered frames the log intensity is interpolated linearly,
  so crossing times, and hence event timestamps, are interpolated to the
  microsecond.
* After an event the pixel is held in reset for ``refractory_us``; when the
  hold ends it samples the current log intensity as its new reference, so
  changes during the hold are lost (a real pixel's reset behaviour). Within a
  frame interval a pixel therefore fires every ``refractory + C / |slope|``.
* Background activity: spontaneous events at ``noise_rate_hz`` per pixel
  (Poisson; ``noise_on_frac`` of them ON, like leak events), independent of
  the signal.

Two compiled passes (numba) over the pixels: the first counts each
interval's events per microsecond, the second writes them straight into
their time-sorted places (a counting sort), so no general sort is needed;
quiet pixels cost one comparison.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from foveate.system.types import EVENT_DTYPE


class DvsArray:
    """The state of a DVS pixel array; ``step`` turns one frame interval into events."""

    def __init__(self, width: int, height: int, contrast_threshold: float = 0.2, threshold_sigma: float = 0.03,
                 refractory_us: float = 100.0, noise_rate_hz: float = 0.1, noise_on_frac: float = 0.8,
                 seed: int = 0, threshold_floor: float = 0.01) -> None:
        if not contrast_threshold > 0:
            raise ValueError(f"contrast_threshold must be > 0, got {contrast_threshold}")
        if threshold_sigma < 0 or refractory_us < 0 or noise_rate_hz < 0 or not 0 <= noise_on_frac <= 1:
            raise ValueError("threshold_sigma, refractory_us and noise_rate_hz must be >= 0, noise_on_frac in [0, 1]")
        self.width, self.height = int(width), int(height)
        self.rng = np.random.default_rng(seed)
        n = self.width * self.height
        self.c_on = np.maximum(self.rng.normal(contrast_threshold, threshold_sigma, n), threshold_floor).astype(np.float32)
        self.c_off = np.maximum(self.rng.normal(contrast_threshold, threshold_sigma, n), threshold_floor).astype(np.float32)
        self.c_min = float(min(self.c_on.min(), self.c_off.min()))
        self.refractory_us = float(refractory_us)
        self.noise_rate_hz = float(noise_rate_hz)
        self.noise_on_frac = float(noise_on_frac)
        self.ref: np.ndarray | None = None
        self.prev: np.ndarray | None = None
        self.t_ready = np.zeros(n, np.float64)  # end of each pixel's refractory hold (us)
        # Scratch: the pixels that fire in a step (index, count, first time, period, polarity).
        self._act_idx = np.zeros(n, np.int64)
        self._act_n = np.zeros(n, np.int64)
        self._act_t1 = np.zeros(n, np.float64)
        self._act_per = np.zeros(n, np.float64)
        self._act_pol = np.zeros(n, np.uint8)

    def reset(self, log_frame: np.ndarray, t_us: int) -> None:
        """Start from a frame: references equal the current log intensity, no pixel held."""
        self.ref = np.asarray(log_frame, np.float32).ravel().copy()
        self.prev = self.ref.copy()
        self.t_ready[:] = t_us

    def step(self, log_frame: np.ndarray, ta_us: int, tb_us: int) -> np.ndarray:
        """Events in ``[ta_us, tb_us)`` as log intensity goes from the previous frame (at ``ta_us``) to ``log_frame``.

        Returns a time-sorted structured array in ``EVENT_DTYPE`` (ties in pixel order).
        """
        if self.ref is None:
            raise RuntimeError("DvsArray.step before reset")
        if tb_us <= ta_us:
            return np.zeros(0, EVENT_DTYPE)
        if tb_us - ta_us > 65535:
            raise ValueError("one step may span at most 65535 us")
        Lb = np.ascontiguousarray(log_frame, dtype=np.float32).ravel()
        if Lb.shape[0] != self.ref.shape[0]:
            raise ValueError(f"frame has {Lb.shape[0]} pixels, the array {self.ref.shape[0]}")
        n_bins = int(tb_us - ta_us)
        hist = np.zeros(n_bins + 1, np.int64)
        total, n_act = _count(self.prev, Lb, self.ref, self.t_ready, self.c_on, self.c_off, int(ta_us), int(tb_us),
                              self.refractory_us, self.c_min, hist, self._act_idx, self._act_n, self._act_t1,
                              self._act_per, self._act_pol)
        ev = np.empty(total, EVENT_DTYPE)
        if total:
            starts = np.concatenate(([0], np.cumsum(hist[:-1])))
            _fire(self.width, int(ta_us), int(tb_us), starts, self._act_idx, self._act_n, self._act_t1, self._act_per,
                  self._act_pol, n_act, ev["x"], ev["y"], ev["t"], ev["p"])
        self.prev = Lb.copy()
        noise = self._background(ta_us, tb_us)
        if noise.size:
            noise = noise[np.argsort(noise["t"], kind="stable")]
            ev = np.insert(ev, np.searchsorted(ev["t"], noise["t"], side="right"), noise)
        return ev

    def _background(self, ta: int, tb: int) -> np.ndarray:
        if self.noise_rate_hz <= 0:
            return np.zeros(0, EVENT_DTYPE)
        lam = self.noise_rate_hz * self.width * self.height * (tb - ta) * 1e-6
        n = int(self.rng.poisson(lam))
        if n == 0:
            return np.zeros(0, EVENT_DTYPE)
        ev = np.empty(n, EVENT_DTYPE)
        ev["x"] = self.rng.integers(0, self.width, n)
        ev["y"] = self.rng.integers(0, self.height, n)
        ev["t"] = self.rng.integers(ta, tb, n)
        ev["p"] = (self.rng.random(n) < self.noise_on_frac).astype(np.uint8)
        return ev


def warm_kernels() -> None:
    """Load (or compile) the two numba passes now: the first call in a process takes a fraction of a second, which a
    simulated camera must not spend inside the reads of a running loop (a real sensor has no such hiccup)."""
    a = DvsArray(2, 1, threshold_sigma=0.0, noise_rate_hz=0.0)
    a.reset(np.zeros((1, 2), np.float32), 0)
    a.step(np.ones((1, 2), np.float32), 0, 10)


@njit(cache=True, nogil=True, inline="always")
def _pixel(la, lb, ref, tr, c_on, c_off, ta, tb, refr):
    """One pixel over [ta, tb): (n events, first time, period, new ref, new t_ready, slope)."""
    dt = tb - ta
    slope = (lb - la) / dt
    start = tr if tr > ta else float(ta)
    if start >= tb:
        return 0, 0.0, 0.0, ref, tr, slope
    resample = tr > ta
    r = ref
    if resample:
        r = la + slope * (start - ta)
    if slope == 0.0:
        return 0, 0.0, 0.0, r, tr, slope
    d_start = la + slope * (start - ta) - r
    if slope > 0.0:
        c = c_on
        t1 = start + (c - d_start) / slope
    else:
        c = c_off
        t1 = start + (-c - d_start) / slope
    if not (t1 >= start and t1 < tb):
        return 0, 0.0, 0.0, r, tr, slope
    period = refr + c / abs(slope)
    n = int(math.floor((tb - 1e-6 - t1) / period)) + 1
    hold_end = t1 + (n - 1) * period + refr
    if hold_end <= tb:
        r = la + slope * (hold_end - ta)
    return n, t1, period, r, hold_end, slope


@njit(cache=True, nogil=True)
def _count(La, Lb, ref, t_ready, c_on, c_off, ta, tb, refr, c_min, hist, act_idx, act_n, act_t1, act_per, act_pol):
    """Pass 1: update every pixel, list the firing ones, count events per microsecond offset into ``hist``.

    Returns (total events, number of firing pixels).
    """
    total = 0
    n_act = 0
    for i in range(La.shape[0]):
        tr = t_ready[i]
        if tr <= ta and abs(Lb[i] - ref[i]) < c_min:
            continue
        n, t1, period, r, hold, slope = _pixel(La[i], Lb[i], ref[i], tr, c_on[i], c_off[i], ta, tb, refr)
        ref[i] = r
        t_ready[i] = hold
        if n == 0:
            continue
        act_idx[n_act] = i
        act_n[n_act] = n
        act_t1[n_act] = t1
        act_per[n_act] = period
        act_pol[n_act] = 1 if slope > 0 else 0
        n_act += 1
        for k in range(n):
            t = int(math.floor(t1 + k * period))
            if t > tb - 1:
                t = tb - 1
            hist[t - ta] += 1
        total += n
    return total, n_act


@njit(cache=True, nogil=True)
def _fire(width, ta, tb, starts, act_idx, act_n, act_t1, act_per, act_pol, n_act, xs, ys, ts, ps):
    """Pass 2: write the events of the firing pixels at their time-sorted places (``starts``: next slot per offset)."""
    for a in range(n_act):
        i = act_idx[a]
        x = i % width
        y = i // width
        pol = act_pol[a]
        t1 = act_t1[a]
        period = act_per[a]
        for k in range(act_n[a]):
            t = int(math.floor(t1 + k * period))
            if t > tb - 1:
                t = tb - 1
            j = starts[t - ta]
            starts[t - ta] = j + 1
            xs[j] = x
            ys[j] = y
            ts[j] = t
            ps[j] = pol
