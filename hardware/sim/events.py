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

Everything is vectorised over the pixels that can fire in the interval
(those whose change reaches a threshold, or whose hold ends), so the cost
grows with the activity, not the sensor size; events of one interval are
ordered with a stable radix sort on their 16-bit offset inside the interval.
"""

from __future__ import annotations

import numpy as np

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
        self._held = np.zeros(0, np.int64)  # pixels whose hold may still be running

    def reset(self, log_frame: np.ndarray, t_us: int) -> None:
        """Start from a frame: references equal the current log intensity, no pixel held."""
        self.ref = np.asarray(log_frame, np.float32).ravel().copy()
        self.prev = self.ref.copy()
        self.t_ready[:] = t_us
        self._held = np.zeros(0, np.int64)

    def step(self, log_frame: np.ndarray, ta_us: int, tb_us: int) -> np.ndarray:
        """Events in ``[ta_us, tb_us)`` as log intensity goes from the previous frame (at ``ta_us``) to ``log_frame``.

        Returns a time-sorted structured array in ``EVENT_DTYPE``.
        """
        if self.ref is None:
            raise RuntimeError("DvsArray.step before reset")
        if tb_us <= ta_us:
            return np.zeros(0, EVENT_DTYPE)
        if tb_us - ta_us > 65535:
            raise ValueError("one step may span at most 65535 us")
        Lb = np.asarray(log_frame, np.float32).ravel()
        La = self.prev
        ref = self.ref
        dt = float(tb_us - ta_us)
        # Candidates: the change reaches a threshold by tb, or a hold ends inside the interval.
        D_b = Lb - ref
        cand = np.flatnonzero(np.abs(D_b) >= self.c_min)
        if self._held.size:
            still = self._held[self.t_ready[self._held] > ta_us]
            cand = np.union1d(cand, still)
        out = [self._fire(cand, La, Lb, ta_us, tb_us, dt)]
        self._held = self._held[self.t_ready[self._held] >= tb_us] if self._held.size else self._held
        noise = self._background(ta_us, tb_us)
        if noise.size:
            out.append(noise)
        self.prev = Lb.copy()
        ev = np.concatenate(out) if len(out) > 1 else out[0]
        if ev.size > 1:
            order = np.argsort((ev["t"] - ta_us).astype(np.uint16), kind="stable")
            ev = ev[order]
        return ev

    def _fire(self, idx: np.ndarray, La: np.ndarray, Lb: np.ndarray, ta: int, tb: int, dt: float) -> np.ndarray:
        if idx.size == 0:
            return np.zeros(0, EVENT_DTYPE)
        la = La[idx].astype(np.float64)
        lb = Lb[idx].astype(np.float64)
        slope = (lb - la) / dt  # log units per us
        ref = self.ref[idx].astype(np.float64)
        t_ready = self.t_ready[idx]
        start = np.maximum(t_ready, float(ta))
        # A hold ending inside the interval resamples the reference there.
        resample = (t_ready > ta) & (t_ready < tb)
        ref = np.where(resample, la + slope * (start - ta), ref)
        d_start = la + slope * (start - ta) - ref
        up = slope > 0
        c = np.where(up, self.c_on[idx], self.c_off[idx]).astype(np.float64)
        target = np.where(up, c, -c)
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = start + (target - d_start) / slope
            period = self.refractory_us + c / np.abs(slope)
        ok = (slope != 0) & (t1 >= start) & (t1 < tb) & (start < tb)
        # Pixels whose reference merely moved (resampled) but which do not fire.
        quiet = resample & ~ok
        if quiet.any():
            self.ref[idx[quiet]] = ref[quiet]
        if not ok.any():
            return np.zeros(0, EVENT_DTYPE)
        p_idx = idx[ok]
        t1, period, slope_ok, la_ok, ref_ok = t1[ok], period[ok], slope[ok], la[ok], ref[ok]
        n = (np.floor((tb - 1e-6 - t1) / period) + 1).astype(np.int64)
        t_last = t1 + (n - 1) * period
        hold_end = t_last + self.refractory_us
        # New references: resampled when the hold ends inside the interval, else at the next step.
        inside = hold_end <= tb
        new_ref = np.where(inside, la_ok + slope_ok * (hold_end - ta), ref_ok)
        self.ref[p_idx] = new_ref.astype(np.float32)
        self.t_ready[p_idx] = hold_end
        held_now = p_idx[~inside]
        if held_now.size:
            self._held = np.union1d(self._held, held_now)
        total = int(n.sum())
        rep = np.repeat(np.arange(p_idx.size), n)
        k = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
        t = np.floor(t1[rep] + k * period[rep]).astype(np.int64)
        ev = np.empty(total, EVENT_DTYPE)
        pix = p_idx[rep]
        ev["x"] = pix % self.width
        ev["y"] = pix // self.width
        ev["t"] = np.clip(t, ta, tb - 1)
        ev["p"] = (slope_ok[rep] > 0).astype(np.uint8)
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
