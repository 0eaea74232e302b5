"""Stripe-centre extraction on stripes with known sub-pixel centres."""

import numpy as np
import pytest

from foveate.system.light_section.stripe import (
    DOUBLE, NO_FIT, SATURATED, WEAK, StripeError, StripeParams, extract_stripe,
)

H, W = 200, 320


def stripe_image(centres, sigma=1.8, amp=180.0, bg=20.0, noise=0.0, seed=0, rows=True, dtype=np.uint8):
    """A Gaussian stripe with per-profile centre ``centres`` (len H), optionally noisy."""
    rng = np.random.default_rng(seed)
    x = np.arange(W)[None, :]
    img = bg + amp * np.exp(-0.5 * ((x - centres[:, None]) / sigma) ** 2)
    img = img + rng.normal(0, noise, img.shape) if noise else img
    img = np.clip(np.round(img), 0, np.iinfo(dtype).max).astype(dtype)
    return img if rows else np.ascontiguousarray(img.T)


def curved_centres():
    v = np.arange(H)
    return 150.37 + 0.2 * (v - H / 2) + 4.0 * np.sin(v / 25.0)


@pytest.mark.parametrize("method,tol_clean", [("centroid", 0.02), ("gauss3", 0.03), ("steger", 0.03)])
def test_subpixel_centres_on_clean_stripe(method, tol_clean):
    c = curved_centres()
    s = extract_stripe(stripe_image(c), StripeParams(method=method))
    assert s.valid.all()
    err = s.position - c
    assert np.sqrt(np.mean(err**2)) < tol_clean
    assert abs(np.mean(err)) < 0.01  # no bias


@pytest.mark.parametrize("method,tol", [("centroid", 0.08), ("gauss3", 0.1), ("steger", 0.05)])
def test_subpixel_centres_with_noise(method, tol):
    c = curved_centres()
    s = extract_stripe(stripe_image(c, noise=3.0, seed=1), StripeParams(method=method))
    assert s.valid.mean() > 0.98
    err = s.position[s.valid] - c[s.valid]
    assert np.sqrt(np.mean(err**2)) < tol


def test_fractional_offsets_are_not_locked_to_pixels():
    # A slowly drifting centre sweeps every sub-pixel fraction: no pixel locking.
    c = 100.0 + 0.013 * np.arange(H)
    for method in ("centroid", "gauss3", "steger"):
        s = extract_stripe(stripe_image(c, sigma=1.6), StripeParams(method=method))
        assert np.max(np.abs(s.position - c)) < 0.05, method


@pytest.mark.parametrize("method", ["centroid", "gauss3", "steger"])
def test_columns_axis_matches_rows_axis(method):
    c = curved_centres()
    a = extract_stripe(stripe_image(c, noise=2.0, seed=2), StripeParams(method=method, axis="rows"))
    b = extract_stripe(stripe_image(c, noise=2.0, seed=2, rows=False), StripeParams(method=method, axis="cols"))
    np.testing.assert_allclose(a.position, b.position, atol=1e-9, equal_nan=True)
    uv_a, _ = a.uv()
    uv_b, _ = b.uv()
    np.testing.assert_allclose(uv_a, uv_b[:, ::-1])


def test_uint16_and_float_images():
    c = curved_centres()
    for dtype in (np.uint16,):
        s = extract_stripe(stripe_image(c, amp=3000.0, bg=100.0, dtype=dtype), StripeParams(min_peak=200))
        assert np.sqrt(np.mean((s.position - c) ** 2)) < 0.02
    f = stripe_image(c).astype(np.float32) / 255.0
    s = extract_stripe(f, StripeParams(min_peak=0.05))
    assert np.sqrt(np.mean((s.position - c) ** 2)) < 0.02


def test_validity_flags():
    c = np.full(H, 160.0)
    img = stripe_image(c).astype(np.float64)
    img[0:10] = 20.0 + np.random.default_rng(0).normal(0, 1, (10, W))  # no stripe: weak
    img[10:20, 156:165] = 255.0  # a saturated plateau, narrower than the window
    img[20:30, 60] = 200.0  # a second peak far from the first
    img[20:30, 59] = img[20:30, 61] = 120.0
    s = extract_stripe(np.clip(img, 0, 255).astype(np.uint8))
    assert np.all(s.flags[0:10] & WEAK)
    assert np.all(s.flags[10:20] & SATURATED)
    assert np.all(s.flags[20:30] & DOUBLE)
    assert s.valid[30:].all()
    assert np.isnan(s.position[:30]).all()
    counts = s.counts()
    assert counts["weak"] == 10 and counts["saturated"] == 10 and counts["double"] == 10
    assert counts["valid"] == H - 30
    # Allowing saturation keeps the plateau rows (centre of a symmetric plateau is still right).
    s2 = extract_stripe(np.clip(img, 0, 255).astype(np.uint8), StripeParams(max_saturated=20))
    assert s2.valid[10:20].all() and np.allclose(s2.position[10:20], 160.0, atol=0.05)


def test_steger_reports_no_fit_on_flat_top():
    img = np.full((H, W), 20, np.uint8)
    img[:, 100:140] = 200  # a 40 px wide bar: no line of the chosen width, no curvature maximum at the peak
    s = extract_stripe(img, StripeParams(method="steger", window=3, max_saturated=100))
    assert np.count_nonzero(s.flags & NO_FIT) > H // 2


def test_bad_input_and_params_raise_clear_errors():
    with pytest.raises(StripeError, match="method"):
        StripeParams(method="fancy")
    with pytest.raises(StripeError, match="axis"):
        StripeParams(axis="diagonal")
    with pytest.raises(StripeError, match="window"):
        StripeParams(window=0)
    with pytest.raises(StripeError, match="grey image"):
        extract_stripe(np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(StripeError, match="too small"):
        extract_stripe(np.zeros((2, 10), np.uint8))


def test_second_peak_search_is_exact():
    from foveate.system.light_section.stripe import _max_outside

    rng = np.random.default_rng(5)
    P = rng.integers(0, 250, (300, 64)).astype(np.uint8)
    a = rng.integers(0, 50, 300)
    b = a + 12
    ref = np.array([max(np.concatenate([P[i, :a[i]], P[i, b[i] + 1:]]), default=0) for i in range(300)])
    assert np.array_equal(_max_outside(P, a, b), ref)
    assert np.array_equal(_max_outside(P[:, :63].copy(), a, b), [max(np.concatenate([P[i, :a[i]], P[i, b[i] + 1:63]]), default=0) for i in range(300)])
