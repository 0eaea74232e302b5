"""Clock synchronisation against simulated device clocks with offset, drift, jitter and outliers."""

import numpy as np
import pytest

from foveate.system.timesync import ClockSync, fit_clock, match_triggers


def _device_clock(host_ns, offset_ns=123_456_789, drift_ppm=40.0):
    """Device time of host time: device = host * (1 + drift) + offset (what the fit must invert)."""
    return (np.asarray(host_ns, dtype=np.float64) * (1 + drift_ppm * 1e-6) + offset_ns).astype(np.int64)


def test_fit_clock_exact_line():
    host = np.arange(0, 10_000_000_000, 100_000_000)
    dev = _device_clock(host, 5_000_000, 25.0)
    fit = fit_clock(dev, host)
    assert fit.to_host_ns(float(dev[-1])) == pytest.approx(host[-1], abs=2)
    assert fit.drift_ppm == pytest.approx(-25.0 / (1 + 25e-6), abs=0.01)
    assert fit.residual_ns < 1.0 and fit.n_inliers == len(host)


def test_fit_clock_short_span_estimates_offset_only():
    host = np.arange(0, 10_000_000, 1_000_000)  # 10 ms: too short to trust a slope
    dev = _device_clock(host, 7_000, 30.0) + np.random.default_rng(0).integers(-3000, 3000, host.size)
    fit = fit_clock(dev, host)
    assert fit.drift == 0.0
    assert fit.to_host_ns(float(dev[5])) == pytest.approx(host[5], abs=4000)


def test_symmetric_sync_with_jitter_and_outliers():
    rng = np.random.default_rng(1)
    sync = ClockSync("symmetric", max_samples=64)
    truth_offset, drift = -2_000_000_000, 60.0
    for k in range(2000):
        t_send = k * 10_000_000 + int(rng.integers(0, 1000))
        up, down = rng.exponential(40_000), rng.exponential(40_000)  # asymmetric random delays
        if k % 17 == 0:
            up += 5_000_000  # a stalled exchange: a long round trip
        if k % 29 == 0:
            down += 3_000_000
        t_dev_host = t_send + up
        device_ns = int(_device_clock(t_dev_host, truth_offset, drift))
        sync.add_exchange(device_ns, t_send, int(t_dev_host + down))
    host_now = 2000 * 10_000_000
    dev_now = int(_device_clock(host_now, truth_offset, drift))
    err = sync.to_host_ns(dev_now) - host_now
    assert abs(err) < 20_000  # well inside the 40 us mean one-way delay
    assert sync.fit.drift_ppm == pytest.approx(-drift, abs=2.0)
    assert sync.n_samples <= 64
    s = sync.summary()
    assert s["samples"] == sync.n_samples and s["residual_us"] < 60 and s["half_rtt_us"] < 100


def test_arrival_sync_lower_envelope():
    """Arrival stamps: host = device + offset + latency (>= 0, random): the min-filter recovers the offset."""
    rng = np.random.default_rng(2)
    sync = ClockSync("arrival", max_samples=256)
    base_latency = 200_000
    hosts, devs = [], []
    for k in range(3000):
        d = k * 3_333_333
        host = int(d * (1 - 80e-6)) + 1_000_000_000 + base_latency + int(rng.exponential(500_000))
        if k % 50 == 0:
            host += 30_000_000  # a burst stuck in a buffer
        hosts.append(host)
        devs.append(d)
        sync.add(d, host)
    fit = sync.fit
    assert fit.drift_ppm == pytest.approx(-80.0, abs=1.0)
    # offset + the smallest latency: within a few us of offset + base latency
    expect = devs[-1] * (1 - 80e-6) + 1_000_000_000 + base_latency
    assert sync.to_host_ns(devs[-1]) == pytest.approx(expect, abs=15_000)
    # a plain least-squares line through the arrivals would be biased by the mean latency (500 us)
    slope, icpt = np.polyfit(np.array(devs, float), np.array(hosts, float) - np.array(devs, float), 1)
    assert abs(devs[-1] + icpt + slope * devs[-1] - expect) > 400_000


def test_to_device_inverts_to_host():
    sync = ClockSync()
    for k in range(50):
        h = k * 100_000_000
        sync.add(int(_device_clock(h, 99_000, -150.0)), h)
    for d in (0, 1_000_000_000, 5_123_456_789):
        assert sync.to_device_ns(sync.to_host_ns(d)) == pytest.approx(d, abs=1)


def test_empty_sync_says_so():
    sync = ClockSync()
    assert sync.summary() == {"samples": 0}
    with pytest.raises(ValueError, match="no samples"):
        sync.to_host_ns(0)
    with pytest.raises(ValueError):
        ClockSync("bogus")


def test_match_triggers_with_missing_spurious_and_drift():
    rng = np.random.default_rng(3)
    # galvo trigger-out times on the host clock: irregular (after each settle)
    ref = np.cumsum(rng.uniform(1.5e6, 2.5e6, 400)).astype(np.int64)
    # the event camera sees them on its own clock: offset 37 ms, 90 ppm, 1 us jitter, 5 % missing, spurious extras
    other = (ref * (1 + 90e-6) + 37_000_000 + rng.normal(0, 1000, ref.size)).astype(np.int64)
    keep = rng.uniform(size=ref.size) > 0.05
    spurious = rng.uniform(other.min(), other.max(), 15).astype(np.int64)
    other_seen = np.sort(np.concatenate([other[keep], spurious]))
    m = match_triggers(ref, other_seen, tolerance_ns=50_000, max_offset_ns=100_000_000)
    assert m.pairs.shape[0] >= keep.sum() - 2
    matched_other = other_seen[m.pairs[:, 1]]
    assert np.all(np.isin(matched_other, other[keep]))  # no spurious trigger was matched
    assert m.fit.to_host_ns(float(other[200])) == pytest.approx(ref[200], abs=5_000)
    assert m.fit.residual_ns < 2_000
    assert m.unmatched_other >= 10


def test_match_triggers_refuses_nonsense():
    with pytest.raises(ValueError, match="both clocks"):
        match_triggers([], [1], tolerance_ns=1, max_offset_ns=1)
    with pytest.raises(ValueError, match="no trigger pairs"):
        match_triggers([0], [10**9], tolerance_ns=10, max_offset_ns=100)
