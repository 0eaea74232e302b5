"""mAP and uncertainty-calibration metrics against cases worked out by hand."""

import numpy as np
import pytest
from scipy import stats

from foveate.models.detector.data import ViewSet
from foveate.models.detector.evaluate import (P1, P2, R2_1, R2_2, Predictions, Residuals, average_precision,
                                              coverage, fit_variance_scales, iou_matrix, mean_ap,
                                              recall_by_brightness, reliability_plot, residuals)


def _views(gt_per_view):
    rows = [[i, c, *b, vis] for i, boxes in enumerate(gt_per_view) for (c, b, vis) in boxes]
    return ViewSet(np.zeros((len(gt_per_view), 8, 8), np.uint8), np.asarray(rows, np.float32).reshape(-1, 7))


def _pred(rows):
    """rows: (view, cls, score, box)."""
    n = len(rows)
    box = np.array([r[3] for r in rows], float).reshape(-1, 4)
    centre = np.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2], 1)
    size = np.stack([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], 1)
    return Predictions(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                       np.array([r[2] for r in rows], float), box, centre,
                       np.tile(np.eye(2), (n, 1, 1)), size, np.ones((n, 2)))


def test_chi_square_radii_of_the_probability_ellipses():
    assert P1 == pytest.approx(0.6827, abs=1e-4) and P2 == pytest.approx(0.9545, abs=1e-4)
    assert np.sqrt(R2_1) == pytest.approx(1.515, abs=1e-3) and np.sqrt(R2_2) == pytest.approx(2.486, abs=1e-3)
    assert stats.chi2.cdf(1.0, 2) == pytest.approx(0.3935, abs=1e-4)  # Mahalanobis radius 1 in 2-D


def test_iou_and_ap_by_hand():
    assert iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10]]))[0, 0] == pytest.approx(1 / 3)
    assert average_precision(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    # TP, FP, TP: precision envelope 1 up to recall .5, 2/3 up to 1
    ap = average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    assert ap == pytest.approx((51 * 1.0 + 50 * 2 / 3) / 101)


def test_map_perfect_wrong_class_and_ignored_boxes():
    gt = [[(0, (10, 10, 30, 50), 1.0), (1, (40, 40, 90, 70), 1.0)], [(0, (5, 5, 25, 45), 1.0)]]
    views = _views(gt)
    perfect = _pred([(0, 0, 0.9, (10, 10, 30, 50)), (0, 1, 0.8, (40, 40, 90, 70)), (1, 0, 0.7, (5, 5, 25, 45))])
    m = mean_ap(perfect, views, 2)
    assert m["map50"] == pytest.approx(1.0) and m["map50_95"] == pytest.approx(1.0)
    # A false positive scoring above both humans: precision envelope 2/3 at every recall level
    fp = _pred([(1, 0, 0.95, (60, 60, 70, 80)), (0, 0, 0.9, (10, 10, 30, 50)), (0, 1, 0.8, (40, 40, 90, 70)),
                (1, 0, 0.7, (5, 5, 25, 45))])
    m = mean_ap(fp, views, 2)
    assert m["ap50_per_class"][0] == pytest.approx(2 / 3) and m["ap50_per_class"][1] == pytest.approx(1.0)
    # Detections on a hidden (visible < 0.3) target count neither way; the target is not required.
    gt_ign = [[(0, (10, 10, 30, 50), 1.0), (0, (60, 10, 80, 50), 0.1)]]
    m = mean_ap(_pred([(0, 0, 0.9, (60, 10, 80, 50)), (0, 0, 0.8, (10, 10, 30, 50))]), _views(gt_ign), 1)
    assert m["map50"] == pytest.approx(1.0)


def test_recall_by_brightness_counts_found_targets_per_band_of_view_brightness():
    gt = [[(0, (10, 10, 30, 50), 1.0), (1, (40, 40, 90, 70), 1.0)], [(0, (5, 5, 25, 45), 1.0)],
          [(0, (5, 5, 25, 45), 0.1)]]
    views = _views(gt)
    views.images[0] = 20   # dim view: one of its two targets found
    views.images[1] = 200  # bright view: its target found
    views.images[2] = 200  # a hidden target is not asked for
    pred = _pred([(0, 0, 0.9, (10, 10, 30, 50)), (0, 1, 0.2, (40, 40, 90, 70)), (1, 0, 0.5, (5, 5, 25, 45)),
                  (2, 0, 0.9, (5, 5, 25, 45))])
    bands = {b["p99_from"]: b for b in recall_by_brightness(pred, views, 2)}
    assert bands[0]["views"] == 1 and bands[0]["targets"] == 2 and bands[0]["recall"] == pytest.approx(0.5)
    assert bands[180]["views"] == 2 and bands[180]["targets"] == 1 and bands[180]["recall"] == pytest.approx(1.0)
    assert bands[40]["targets"] == 0 and bands[40]["recall"] is None


def test_coverage_of_a_calibrated_gaussian_and_scale_fit(tmp_path):
    rng = np.random.default_rng(0)
    n = 4000
    sig = rng.uniform(0.5, 5.0, (n, 2))
    rho = rng.uniform(-0.5, 0.5, n)
    cov = np.zeros((n, 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = sig[:, 0] ** 2, sig[:, 1] ** 2
    cov[:, 0, 1] = cov[:, 1, 0] = rho * sig[:, 0] * sig[:, 1]
    err = np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.standard_normal((n, 2)))
    lvar = rng.uniform(0.001, 0.05, (n, 2))
    lerr = rng.standard_normal((n, 2)) * np.sqrt(lvar)
    res = Residuals(err, cov, lerr, lvar)
    c = coverage(res)
    assert c["centre_ellipse_1sigma"] == pytest.approx(P1, abs=0.025)
    assert c["centre_ellipse_2sigma"] == pytest.approx(P2, abs=0.012)
    assert c["centre_mahalanobis_r1"] == pytest.approx(0.393, abs=0.025)
    assert c["size_per_axis_1sigma"] == pytest.approx(P1, abs=0.025)
    # Variances predicted 4x too small (centre) and 2x too large (size): the fit finds both factors.
    cs, ss = fit_variance_scales(Residuals(err, cov / 4, lerr, lvar * 2))
    assert cs == pytest.approx(4.0, rel=0.1) and ss == pytest.approx(0.5, rel=0.1)
    png = reliability_plot(res, tmp_path / "rel.png")
    assert png.stat().st_size > 10_000


def test_residuals_use_matched_detections_only():
    views = _views([[(0, (10, 10, 30, 50), 1.0)]])
    pred = _pred([(0, 0, 0.9, (12, 10, 32, 50)), (0, 0, 0.95, (100, 100, 120, 140)), (0, 0, 0.1, (10, 10, 30, 50))])
    res = residuals(pred, views, 1)
    assert len(res.err) == 1
    np.testing.assert_allclose(res.err[0], [-2.0, 0.0])
