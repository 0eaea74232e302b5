"""Dense representations of event windows for models, on numpy and on torch.

Shapes are channel-first with ``(width, height) = sensor_size``:

- :func:`voxel_grid` ``[bins, H, W]`` float32: SLTNet/E-RAFT style. Time is
  mapped onto ``[0, bins - 1]`` over ``t_range`` (default: first to last event
  of the window); each event adds its polarity (±1) to its two nearest bins,
  weighted bilinearly in time; then, with ``normalize``, the non-zero voxels
  are shifted and scaled to zero mean and unit standard deviation (zeros stay
  zero).
- :func:`count_frame` ``[2, H, W]`` float32: events per pixel, channel 0 OFF
  (p=0), channel 1 ON (p=1). :func:`polarity_frame` ``[H, W]``: ON − OFF.
- :func:`time_surface` ``[2, H, W]`` float32: ``exp(-(t_ref - t_last) / tau)``
  per polarity, ``t_last`` the pixel's most recent event before ``t_ref``,
  0 where the pixel has none.

The torch variants take tensors ``x, y, t, p`` (any integer dtype; ``t`` in
µs) on any device and return tensors on that device; they compute the same
numbers (float32 rounding aside). Events outside the sensor are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from foveate.system.types import EVENT_DTYPE, EventPacket

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _arrays(events) -> np.ndarray:
    ev = events.events if isinstance(events, EventPacket) else events
    if ev.dtype != EVENT_DTYPE:
        raise TypeError(f"events must have dtype {EVENT_DTYPE}, got {ev.dtype}")
    return ev


def _check(bins: int | None, sensor_size) -> tuple[int, int]:
    w, h = int(sensor_size[0]), int(sensor_size[1])
    if w <= 0 or h <= 0:
        raise ValueError(f"sensor_size must be positive, got {sensor_size}")
    if bins is not None and bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    return w, h


def _time_coords(t: np.ndarray, bins: int, t_range) -> np.ndarray:
    t0, t1 = (int(t[0]), int(t[-1])) if t_range is None else (int(t_range[0]), int(t_range[1]))
    span = t1 - t0
    return (bins - 1) * (t.astype(np.float64) - t0) / (span if span > 0 else 1.0)


def normalize_nonzero(v: np.ndarray) -> np.ndarray:
    """Zero mean, unit std over the non-zero entries of ``v``; zeros stay zero (in place, returned)."""
    nz = v != 0
    n = int(nz.sum())
    if n == 0:
        return v
    vals = v[nz].astype(np.float64)
    mean = vals.mean()
    std = vals.std()
    v[nz] = ((vals - mean) / (std if std > 0 else 1.0)).astype(v.dtype)
    return v


def voxel_grid(events, bins: int, sensor_size, t_range: tuple[int, int] | None = None,
               normalize: bool = True) -> np.ndarray:
    """``[bins, H, W]`` float32 voxel grid of a window of time-sorted events (see the module doc)."""
    w, h = _check(bins, sensor_size)
    ev = _arrays(events)
    out = np.zeros(bins * h * w, np.float32)
    if len(ev) == 0:
        return out.reshape(bins, h, w)
    ts = _time_coords(ev["t"], bins, t_range)
    x = ev["x"].astype(np.int64)
    y = ev["y"].astype(np.int64)
    ok = (x < w) & (y < h) & (ts >= 0) & (ts <= bins - 1)
    ti = np.floor(ts).astype(np.int64)
    frac = ts - ti
    pol = np.where(ev["p"] > 0, 1.0, -1.0)
    pix = y * w + x
    acc = np.zeros(bins * h * w, np.float64)
    for b, wt in ((ti, 1.0 - frac), (ti + 1, frac)):
        m = ok & (b < bins)
        acc += np.bincount(b[m] * (h * w) + pix[m], weights=pol[m] * wt[m], minlength=acc.size)
    out[:] = acc
    out = out.reshape(bins, h, w)
    return normalize_nonzero(out) if normalize else out


def count_frame(events, sensor_size) -> np.ndarray:
    """``[2, H, W]`` float32 event counts: channel 0 OFF, channel 1 ON."""
    w, h = _check(None, sensor_size)
    ev = _arrays(events)
    x, y, p = ev["x"].astype(np.int64), ev["y"].astype(np.int64), (ev["p"] > 0).astype(np.int64)
    ok = (x < w) & (y < h)
    idx = p[ok] * (h * w) + y[ok] * w + x[ok]
    return np.bincount(idx, minlength=2 * h * w).astype(np.float32).reshape(2, h, w)


def polarity_frame(events, sensor_size) -> np.ndarray:
    """``[H, W]`` float32: ON count minus OFF count per pixel."""
    c = count_frame(events, sensor_size)
    return c[1] - c[0]


def time_surface(events, sensor_size, tau_us: float, t_ref_us: int | None = None) -> np.ndarray:
    """``[2, H, W]`` float32 exponential time surface at ``t_ref_us`` (default: last event's t)."""
    w, h = _check(None, sensor_size)
    if not tau_us > 0:
        raise ValueError(f"tau_us must be > 0, got {tau_us}")
    ev = _arrays(events)
    out = np.zeros((2, h, w), np.float32)
    if len(ev) == 0:
        return out
    t = ev["t"]
    t_ref = int(t.max()) if t_ref_us is None else int(t_ref_us)
    x, y, p = ev["x"].astype(np.int64), ev["y"].astype(np.int64), (ev["p"] > 0).astype(np.int64)
    ok = (x < w) & (y < h) & (t <= t_ref)
    last = np.full(2 * h * w, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(last, p[ok] * (h * w) + y[ok] * w + x[ok], t[ok])
    seen = last != np.iinfo(np.int64).min
    flat = out.reshape(-1)
    flat[seen] = np.exp(-(t_ref - last[seen]).astype(np.float64) / tau_us)
    return out


# -- torch --------------------------------------------------------------------


def _torch_check(x, y, t, p):
    import torch

    n = x.shape[0]
    if not (y.shape[0] == t.shape[0] == p.shape[0] == n):
        raise ValueError("x, y, t, p must have the same length")
    return torch


def voxel_grid_torch(x, y, t, p, bins: int, sensor_size, t_range: tuple[int, int] | None = None,
                     normalize: bool = True) -> "torch.Tensor":
    """Torch twin of :func:`voxel_grid` (``[bins, H, W]`` float32 on the tensors' device)."""
    torch = _torch_check(x, y, t, p)
    w, h = _check(bins, sensor_size)
    dev = x.device
    acc = torch.zeros(bins * h * w, dtype=torch.float64, device=dev)
    if x.shape[0]:
        t = t.to(torch.int64)
        t0, t1 = (int(t[0]), int(t[-1])) if t_range is None else (int(t_range[0]), int(t_range[1]))
        span = t1 - t0
        ts = (bins - 1) * (t - t0).to(torch.float64) / (span if span > 0 else 1.0)
        xi, yi = x.to(torch.int64), y.to(torch.int64)
        ok = (xi < w) & (yi < h) & (ts >= 0) & (ts <= bins - 1)
        ti = torch.floor(ts).to(torch.int64)
        frac = ts - ti
        pol = torch.where(p > 0, 1.0, -1.0).to(torch.float64)
        pix = yi * w + xi
        for b, wt in ((ti, 1.0 - frac), (ti + 1, frac)):
            m = ok & (b < bins)
            acc.index_add_(0, b[m] * (h * w) + pix[m], pol[m] * wt[m])
    out = acc.to(torch.float32).reshape(bins, h, w)
    if normalize:
        nz = out != 0
        if bool(nz.any()):
            vals = out[nz].to(torch.float64)
            std = vals.std(unbiased=False)
            out[nz] = ((vals - vals.mean()) / (std if std > 0 else 1.0)).to(torch.float32)
    return out


def count_frame_torch(x, y, p, sensor_size) -> "torch.Tensor":
    """Torch twin of :func:`count_frame`."""
    torch = _torch_check(x, y, x, p)
    w, h = _check(None, sensor_size)
    xi, yi, pi = x.to(torch.int64), y.to(torch.int64), (p > 0).to(torch.int64)
    ok = (xi < w) & (yi < h)
    out = torch.zeros(2 * h * w, dtype=torch.float32, device=x.device)
    out.index_add_(0, pi[ok] * (h * w) + yi[ok] * w + xi[ok], torch.ones(int(ok.sum()), dtype=torch.float32, device=x.device))
    return out.reshape(2, h, w)


def time_surface_torch(x, y, t, p, sensor_size, tau_us: float, t_ref_us: int | None = None) -> "torch.Tensor":
    """Torch twin of :func:`time_surface`."""
    torch = _torch_check(x, y, t, p)
    w, h = _check(None, sensor_size)
    if not tau_us > 0:
        raise ValueError(f"tau_us must be > 0, got {tau_us}")
    out = torch.zeros(2 * h * w, dtype=torch.float32, device=x.device)
    if x.shape[0] == 0:
        return out.reshape(2, h, w)
    t = t.to(torch.int64)
    t_ref = int(t.max()) if t_ref_us is None else int(t_ref_us)
    xi, yi, pi = x.to(torch.int64), y.to(torch.int64), (p > 0).to(torch.int64)
    ok = (xi < w) & (yi < h) & (t <= t_ref)
    low = torch.iinfo(torch.int64).min
    last = torch.full((2 * h * w,), low, dtype=torch.int64, device=x.device)
    last.scatter_reduce_(0, pi[ok] * (h * w) + yi[ok] * w + xi[ok], t[ok], reduce="amax")
    seen = last != low
    out[seen] = torch.exp(-(t_ref - last[seen]).to(torch.float64) / tau_us).to(torch.float32)
    return out.reshape(2, h, w)


def events_to_torch(events, device=None) -> dict[str, "torch.Tensor"]:
    """``{"x", "y", "t", "p"}`` int64 tensors of an event array or packet, on ``device``."""
    import torch

    ev = _arrays(events)
    return {k: torch.from_numpy(ev[k].astype(np.int64)).to(device) for k in ("x", "y", "t", "p")}
