"""Representations against straightforward per-event reference loops, numpy and torch alike."""

from __future__ import annotations

import math

import numpy as np
import pytest

from foveate.system.events.representations import (
    count_frame,
    count_frame_torch,
    events_to_torch,
    normalize_nonzero,
    polarity_frame,
    time_surface,
    time_surface_torch,
    voxel_grid,
    voxel_grid_torch,
)
from foveate.system.types import EventPacket

SIZE = (13, 7)  # (width, height): non-square catches x/y swaps


def ref_voxel(ev, bins, size, t_range=None, normalize=True):
    w, h = size
    v = np.zeros((bins, h, w), np.float64)
    if len(ev):
        t0, t1 = (int(ev["t"][0]), int(ev["t"][-1])) if t_range is None else t_range
        for e in ev:
            if e["x"] >= w or e["y"] >= h:
                continue
            ts = (bins - 1) * (int(e["t"]) - t0) / ((t1 - t0) or 1)
            if ts < 0 or ts > bins - 1:
                continue
            lo = math.floor(ts)
            pol = 1.0 if e["p"] else -1.0
            v[lo, e["y"], e["x"]] += pol * (1 - (ts - lo))
            if lo + 1 < bins:
                v[lo + 1, e["y"], e["x"]] += pol * (ts - lo)
    if normalize:
        vals = v[v != 0]
        if len(vals):
            m, s = vals.mean(), vals.std()
            v[v != 0] = (vals - m) / (s if s > 0 else 1)
    return v


def ref_counts(ev, size):
    w, h = size
    c = np.zeros((2, h, w))
    for e in ev:
        if e["x"] < w and e["y"] < h:
            c[int(e["p"] > 0), e["y"], e["x"]] += 1
    return c


def ref_surface(ev, size, tau, t_ref=None):
    w, h = size
    t_ref = int(ev["t"].max()) if t_ref is None else t_ref
    last = {}
    for e in ev:
        if e["x"] < w and e["y"] < h and e["t"] <= t_ref:
            last[(int(e["p"] > 0), int(e["y"]), int(e["x"]))] = int(e["t"])
    s = np.zeros((2, h, w))
    for (p, y, x), t in last.items():
        s[p, y, x] = math.exp(-(t_ref - t) / tau)
    return s


@pytest.fixture
def ev(make_events):
    e = make_events(400, size=(15, 8), t_span_us=10_000, seed=7, t0=1_000_000)  # some outside the 13x7 sensor
    return e


@pytest.mark.parametrize("bins", [1, 2, 5])
@pytest.mark.parametrize("normalize", [False, True])
def test_voxel_grid_matches_loop(ev, bins, normalize):
    got = voxel_grid(ev, bins, SIZE, normalize=normalize)
    assert got.shape == (bins, 7, 13) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref_voxel(ev, bins, SIZE, normalize=normalize), rtol=1e-5, atol=1e-5)


def test_voxel_grid_explicit_range_and_packet(ev):
    tr = (1_002_000, 1_008_000)
    got = voxel_grid(EventPacket(ev, SIZE, 1_000_000, 1_010_001), 4, SIZE, t_range=tr, normalize=False)
    np.testing.assert_allclose(got, ref_voxel(ev, 4, SIZE, tr, normalize=False), rtol=1e-5, atol=1e-6)


def test_voxel_normalisation_over_nonzero_voxels(ev):
    v = voxel_grid(ev, 5, SIZE)
    nz = v[v != 0]
    assert abs(nz.mean()) < 1e-5 and abs(nz.std() - 1) < 1e-4
    assert normalize_nonzero(np.zeros((2, 3), np.float32)).sum() == 0


def test_count_and_polarity_frames(ev):
    c = count_frame(ev, SIZE)
    np.testing.assert_array_equal(c, ref_counts(ev, SIZE))
    np.testing.assert_array_equal(polarity_frame(ev, SIZE), c[1] - c[0])


@pytest.mark.parametrize("t_ref", [None, 1_005_000])
def test_time_surface(ev, t_ref):
    np.testing.assert_allclose(time_surface(ev, SIZE, 2_000.0, t_ref), ref_surface(ev, SIZE, 2_000.0, t_ref), rtol=1e-6)


def test_empty_windows(ev):
    e = ev[:0]
    assert voxel_grid(e, 3, SIZE).sum() == 0 and count_frame(e, SIZE).sum() == 0 and time_surface(e, SIZE, 1.0).sum() == 0


def test_torch_twins_match_numpy(ev):
    torch = pytest.importorskip("torch")
    d = events_to_torch(ev)
    for normalize in (False, True):
        np.testing.assert_allclose(voxel_grid_torch(d["x"], d["y"], d["t"], d["p"], 5, SIZE, normalize=normalize).numpy(),
                                   voxel_grid(ev, 5, SIZE, normalize=normalize), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(count_frame_torch(d["x"], d["y"], d["p"], SIZE).numpy(), count_frame(ev, SIZE))
    np.testing.assert_allclose(time_surface_torch(d["x"], d["y"], d["t"], d["p"], SIZE, 2_000.0).numpy(),
                               time_surface(ev, SIZE, 2_000.0), rtol=1e-6)
    empty = {k: v[:0] for k, v in d.items()}
    assert float(voxel_grid_torch(empty["x"], empty["y"], empty["t"], empty["p"], 2, SIZE).abs().sum()) == 0
    assert voxel_grid_torch(d["x"], d["y"], d["t"], d["p"], 2, SIZE).dtype == torch.float32


def test_bad_arguments(ev):
    with pytest.raises(ValueError):
        voxel_grid(ev, 0, SIZE)
    with pytest.raises(ValueError):
        count_frame(ev, (0, 5))
    with pytest.raises(ValueError):
        time_surface(ev, SIZE, 0.0)
    with pytest.raises(TypeError):
        voxel_grid(np.zeros(3), 2, SIZE)
