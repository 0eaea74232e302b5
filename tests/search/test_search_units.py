"""Unit tests of the search system's pieces: motion model, ordering, map, tracker, stages, histograms."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from foveate.system.clock import ManualClock
from foveate.system.errors import ConfigError
from foveate.system.search.geometry import LinearGeometry
from foveate.system.search.planner import (GalvoMotionModel, PlanContext, ProbabilityPlanner, order_views,
                                           path_time_s)
from foveate.system.search.ppm import PriorTable, ProbabilityMap
from foveate.system.search.settings import (GalvoModelSettings, PlannerSettings, PPMSettings, TrackerSettings,
                                            parse_search_settings)
from foveate.system.search.stages import SimulatedStage
from foveate.system.search.stats import LatencyHistogram
from foveate.system.search.tracker import Measurement, Tracker, truncated_cov
from foveate.system.types import Detection

LIMITS = ((-15.0, 15.0), (-11.0, 11.0))
CLASSES = ("flat", "construction+sky", "object", "nature", "human", "vehicle")


def test_motion_model_matches_time_optimal_profile():
    m = GalvoMotionModel(GalvoModelSettings(slew_deg_s=4000.0, accel_deg_s2=4e7, settle_s=5e-4))
    # Short step (below v^2 / a = 0.4 deg): triangular profile, 2 sqrt(d / a).
    assert m.axis_time_s(0.2) == pytest.approx(2 * math.sqrt(0.2 / 4e7))
    # Long step: cruise at the slew limit, d / v + v / a.
    assert m.axis_time_s(20.0) == pytest.approx(20.0 / 4000 + 4000 / 4e7)
    # The slower axis sets the time; settling is added once; no move costs nothing.
    assert m.move_time_s((0, 0), (1.0, 20.0)) == pytest.approx(m.axis_time_s(20.0) + 5e-4)
    assert m.move_time_s((3, 3), (3, 3)) == 0.0


def test_order_views_is_near_optimal_and_never_worse_than_nearest_neighbour():
    m = GalvoMotionModel(GalvoModelSettings())
    rng = np.random.default_rng(1)
    for _ in range(5):
        pts = rng.uniform(-10, 10, (7, 2))
        best = min(path_time_s((0, 0), pts[list(p)], m) for p in itertools.permutations(range(7)))
        nn = path_time_s((0, 0), pts[order_views((0, 0), pts, m, two_opt=False)], m)
        opt = path_time_s((0, 0), pts[order_views((0, 0), pts, m, two_opt=True)], m)
        assert sorted(order_views((0, 0), pts, m)) == list(range(7))
        assert opt <= nn + 1e-12
        assert opt <= 1.1 * best


def _map(cell=0.2):
    geo = LinearGeometry(LIMITS, (64, 64), 1.28, (160, 120), 64.0, "equiangular")
    settings = PPMSettings(cell_deg=cell)
    return geo, ProbabilityMap(geo, settings, PriorTable(settings.prior, CLASSES))


def test_ppm_puts_the_prior_where_the_segmentation_sees_a_target_and_suppresses_visits():
    geo, ppm = _map()
    probs = np.zeros((6, 120, 160), np.float32)
    probs[1] = 1.0
    (u, v), = geo.command_to_wide(np.array([[5.0, -3.0]]))
    probs[:, int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = 0
    probs[4, int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3] = 1.0  # a human
    ppm.update_segmentation(probs, 0)
    hot = ppm.prior > 0.5 * ppm.prior.max()
    X, Y = np.meshgrid(ppm.grid.xs, ppm.grid.ys)
    assert X[hot].mean() == pytest.approx(5.0, abs=0.3) and Y[hot].mean() == pytest.approx(-3.0, abs=0.3)
    i, j = ppm.grid.index(np.array([[5.0, -3.0]]))
    i, j = int(i[0]), int(j[0])
    assert ppm.prior.max() > 20 * np.median(ppm.prior)
    # Visiting leaves only the floor, and mass returns with the configured time constant.
    ppm.mark_visited((5.0, -3.0), (0.64, 0.64), 0)
    assert ppm.mass(0)[i, j] == pytest.approx(ppm.prior[i, j] * ppm.settings.visit_floor, rel=1e-5)
    tau = ppm.settings.visit_return_s
    back = ppm.mass(int(3 * tau * 1e9))[i, j] / ppm.prior[i, j]
    assert back == pytest.approx(1 - (1 - ppm.settings.visit_floor) * math.exp(-3), rel=1e-5)


def test_prior_table_rejects_unknown_classes():
    with pytest.raises(ConfigError, match="search.ppm.prior.human.road: unknown segmentation class"):
        PriorTable({"human": {"road": 1.0}}, CLASSES)


def test_tracker_fuses_looks_by_inverse_variance_and_gates():
    tr = Tracker(TrackerSettings(confirm_hits=2, confirm_score=1.0))
    r1, r2 = 0.04**2, 0.02**2
    tr.update(0, (0, 0), (0.6, 0.6), [Measurement(4, "human", 0.9, np.array([1.0, 1.0]), np.eye(2) * r1, 0)])
    tr.update(0, (0, 0), (0.6, 0.6), [Measurement(4, "human", 0.9, np.array([1.03, 1.0]), np.eye(2) * r2, 0)])
    assert len(tr.tracks) == 1 and tr.tracks[0].confirmed
    t = tr.tracks[0]
    w1, w2 = 1 / r1, 1 / r2
    assert t.x[0] == pytest.approx((w1 * 1.0 + w2 * 1.03) / (w1 + w2))
    assert t.P[0, 0] == pytest.approx(1 / (w1 + w2))
    # Far outside the gate (and another class nearby): new tracks, not a jump.
    tr.update(0, (0, 0), (0.6, 0.6), [Measurement(4, "human", 0.9, np.array([3.0, 1.0]), np.eye(2) * r2, 0),
                                      Measurement(5, "vehicle", 0.9, np.array([1.0, 1.0]), np.eye(2) * r2, 0)])
    assert len(tr.tracks) == 3


def test_tracks_survive_between_looks_and_die_after_missed_looks():
    s = TrackerSettings(confirm_hits=1, max_misses=3, timeout_s=2.0)
    tr = Tracker(s)
    tr.update(0, (0, 0), (0.6, 0.6), [Measurement(4, "human", 0.9, np.array([0.1, 0.1]), np.eye(2) * 1e-4, 0)])
    # Views elsewhere never count as misses.
    for k in range(1, 20):
        tr.update(k * 50_000_000, (8.0, 8.0), (0.6, 0.6), [])
    assert len(tr.tracks) == 1
    # Looks at it without a detection: dropped on the third.
    for k in range(3):
        assert len(tr.tracks) == 1
        tr.update(1_000_000_000 + k, (0.1, 0.1), (0.6, 0.6), [])
    assert tr.tracks == []


def test_truncated_boxes_get_a_wide_covariance_along_the_cut_axis():
    d = Detection(0, "human", 0.9, (0.0, 20.0, 30.0, 60.0), (15.0, 40.0), np.eye(2) * 2.0, (30.0, 40.0))
    cov = truncated_cov(d, (64, 64))
    assert cov[0, 0] == pytest.approx(2.0 + 30.0**2) and cov[1, 1] == pytest.approx(2.0)


def test_adaptive_sampling_range_one_view_for_a_sure_track_a_tiling_for_an_unsure_one():
    s = PlannerSettings(batch_views=6)
    planner = ProbabilityPlanner(LIMITS, s, GalvoMotionModel(GalvoModelSettings()))
    tr = Tracker(TrackerSettings(confirm_hits=1))
    tr.update(0, (0, 0), (0.64, 0.64), [Measurement(4, "human", 0.9, np.array([2.0, -3.0]), np.eye(2) * 1e-4, 0)])
    tr.tracks[0].last_look_ns = -10**9  # due by age
    ctx = PlanContext(0, (0.0, 0.0), None, tr, (0.64, 0.64))
    views = planner._revisit_views(ctx, 6)
    assert len(views) == 1 and views[0].cmd == pytest.approx((2.0, -3.0))
    P = tr.tracks[0].P.copy()
    P[:2, :2] = np.eye(2) * 1.0**2  # lost: 1 deg sigma
    tr.tracks[0].P = P
    views = planner._revisit_views(ctx, 6)
    assert len(views) == s.max_window_views
    assert len({v.cmd for v in views}) == len(views)


def test_simulated_stage_times_results_and_drops_by_policy():
    clock = ManualClock()
    st = SimulatedStage("detect", lambda x: x * 10, clock, queue=2, drop="oldest", latency_s=0.010)
    for k in range(5):
        st.submit(k)  # 0 runs; 1, 2 wait; 3 and 4 push out the oldest waiting
    assert st.dropped == 2 and st.pending == 3
    assert st.poll() == []
    clock.advance_ns(10_000_000)
    done = st.poll()
    assert [d.result for d in done] == [0] and done[0].done_ns == 10_000_000
    clock.advance_ns(20_000_000)
    done = st.poll()
    assert [d.result for d in done] == [30, 40]
    assert [d.done_ns for d in done] == [20_000_000, 30_000_000]
    st2 = SimulatedStage("x", lambda x: x, clock, queue=1, drop="newest", latency_s=0.01)
    assert st2.submit(1) and st2.submit(2) and not st2.submit(3)
    assert st2.dropped == 1


def test_latency_histogram_percentiles_within_bin_accuracy():
    rng = np.random.default_rng(0)
    v = rng.lognormal(-6, 1, 20000)
    h = LatencyHistogram()
    for x in v:
        h.record(x)
    for q in (50, 90, 99):
        assert h.percentile(q) == pytest.approx(np.percentile(v, q), rel=0.07)
    assert h.max == v.max() and h.n == len(v)


def test_search_settings_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"rig.yaml: search.planner.batch_view: unknown key 'batch_view' \(did you mean 'batch_views'"):
        parse_search_settings({"planner": {"batch_view": 3}}, "rig.yaml")
    with pytest.raises(ConfigError, match="search.scheduler.fire"):
        parse_search_settings({"scheduler": {"fire": "soon"}}, "rig.yaml")
