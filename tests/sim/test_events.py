"""DVS emulation: thresholds, interpolated times, refractory period, noise; counts scale with contrast and speed."""

import math

import numpy as np
import pytest

from foveate.hardware.sim.events import DvsArray
from foveate.system.types import EVENT_DTYPE

from .conftest import make_rig


def test_ramp_gives_one_event_per_threshold_at_interpolated_times():
    dvs = DvsArray(1, 1, contrast_threshold=0.2, threshold_sigma=0.0, refractory_us=0.0, noise_rate_hz=0.0)
    dvs.reset(np.zeros((1, 1)), 0)
    ev = dvs.step(np.full((1, 1), 1.05), 0, 1000)  # +1.05 in log over 1 ms: crossings at 0.2, 0.4, ... 1.0
    assert ev.dtype == EVENT_DTYPE
    assert len(ev) == 5 and np.all(ev["p"] == 1)
    expect = [int(math.floor(k * 0.2 / 1.05 * 1000)) for k in range(1, 6)]
    assert ev["t"].tolist() == expect
    ev = dvs.step(np.full((1, 1), -0.05), 1000, 2000)  # back down past 0.0: OFF at 0.8, 0.6, 0.4, 0.2, 0.0
    assert len(ev) == 5 and np.all(ev["p"] == 0)
    assert np.all((ev["t"] >= 1000) & (ev["t"] < 2000)) and np.all(np.diff(ev["t"]) >= 0)


def test_refractory_period_spaces_events_and_loses_change():
    dvs = DvsArray(1, 1, contrast_threshold=0.1, threshold_sigma=0.0, refractory_us=300.0, noise_rate_hz=0.0)
    dvs.reset(np.zeros((1, 1)), 0)
    ev = dvs.step(np.full((1, 1), 1.0), 0, 1000)  # slope 0.001/us: C/|s| = 100 us, + 300 us hold
    assert ev["t"].tolist() == [100, 500, 900]
    # Without the hold it fires every 100 us (the tenth crossing, at 1000 us, belongs to the next interval).
    dvs0 = DvsArray(1, 1, contrast_threshold=0.1, threshold_sigma=0.0, refractory_us=0.0, noise_rate_hz=0.0)
    dvs0.reset(np.zeros((1, 1)), 0)
    assert dvs0.step(np.full((1, 1), 1.0), 0, 1000)["t"].tolist() == list(range(100, 1000, 100))


def test_threshold_mismatch_spreads_counts_across_pixels():
    dvs = DvsArray(100, 100, contrast_threshold=0.2, threshold_sigma=0.04, refractory_us=0.0, noise_rate_hz=0.0, seed=1)
    assert np.std(dvs.c_on) == pytest.approx(0.04, rel=0.1)
    dvs.reset(np.zeros((100, 100)), 0)
    ev = dvs.step(np.full((100, 100), 2.0), 0, 1000)
    counts = np.bincount(ev["y"].astype(int) * 100 + ev["x"], minlength=10000)
    assert counts.min() < counts.max()  # 2.0 / C differs with C
    assert counts.mean() == pytest.approx(np.mean(np.floor(2.0 / dvs.c_on)), rel=0.01)


def test_background_activity_rate():
    dvs = DvsArray(200, 100, noise_rate_hz=5.0, noise_on_frac=0.8, seed=3)
    dvs.reset(np.zeros((100, 200)), 0)
    ev = np.concatenate([dvs.step(np.zeros((100, 200)), t, t + 10000) for t in range(0, 1_000_000, 10000)])
    assert len(ev) == pytest.approx(5.0 * 200 * 100 * 1.0, rel=0.05)
    assert np.mean(ev["p"]) == pytest.approx(0.8, abs=0.02)


class MovingEdge:
    """A vertical edge sweeping right at ``speed_deg_s``: dark left of it, ``bright`` right (scene protocol)."""

    name = "moving_edge"

    def __init__(self, speed_deg_s: float, dark: float, bright: float) -> None:
        self.speed, self.dark, self.bright = speed_deg_s, dark, bright

    def render_rays(self, origin_mm, dirs, t_s, twin):
        az = np.degrees(np.arctan2(dirs[..., 0], dirs[..., 2]))
        edge = -20.0 + self.speed * t_s
        inten = np.where(az < edge, self.dark, self.bright).astype(np.float32)
        return inten, np.ones(inten.shape, np.uint8)


def _edge_events(scene, seconds=0.4):
    r = make_rig(drop=("wide", "search", "galvo", "laser"),
                 devices={"wide_events": {"noise_rate_hz": 0.0, "refractory_us": 0.0, "threshold_sigma": 0.02}})
    cam = r.devices["wide_events"]
    cam.twin.scene = scene
    with r:
        r.clock.sleep_s(seconds)
        p = cam.read()
    return p


def test_event_counts_scale_with_speed_and_contrast():
    eps = 0.02
    n1 = len(_edge_events(MovingEdge(20.0, 0.1, 0.8)).events)
    n2 = len(_edge_events(MovingEdge(40.0, 0.1, 0.8)).events)
    assert n2 / n1 == pytest.approx(2.0, rel=0.1)  # twice the pixels crossed per second
    # Contrast: events per crossing = log contrast / threshold.
    lo = len(_edge_events(MovingEdge(20.0, 0.3, 0.6)).events)
    hi = len(_edge_events(MovingEdge(20.0, 0.15, 0.9)).events)
    ratio_expected = math.log((0.9 + eps) / (0.15 + eps)) / math.log((0.6 + eps) / (0.3 + eps))
    assert hi / lo == pytest.approx(ratio_expected, rel=0.2)
    p = _edge_events(MovingEdge(20.0, 0.1, 0.8))
    assert np.all(p.events["p"] == 0)  # the dark side advances over bright pixels: OFF only


def test_static_scene_fires_only_with_ego_motion():
    def run(vib):
        r = make_rig(sim={"n_humans": 0, "n_vehicles": 0}, drop=("wide", "search", "galvo", "laser"),
                     devices={"wide_events": {"vibration_deg": vib, "noise_rate_hz": 0.0}})
        with r:
            r.clock.sleep_s(0.1)
            return r.devices["wide_events"].read()

    assert len(run(0.0).events) == 0
    p = run(0.05)
    assert len(p.events) > 2000
    assert {0, 1} <= set(np.unique(p.events["p"]).tolist())


def test_labels_at_give_the_window_ground_truth():
    r = make_rig(drop=("wide", "search", "galvo", "laser"))
    with r:
        cam = r.devices["wide_events"]
        r.clock.sleep_s(0.05)
        p = cam.read()
        lab = cam.labels_at(p.t_end_us)
        assert lab.shape == (240, 320) and lab.dtype == np.uint8
        assert set(np.unique(lab).tolist()) >= {0, 1, 3}
        # Targets appear in the labels where they are.
        assert np.any(lab == 4) or np.any(lab == 5)
