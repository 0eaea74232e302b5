"""Galvo axis physics: closed form against an independent ODE solution, settling, slew/accel limits, errors."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from foveate.hardware.sim.backends import SimGalvo
from foveate.hardware.sim.galvo_dynamics import SecondOrderAxis
from foveate.system.clock import ManualClock


def _ode_positions(ax: SecondOrderAxis, t0: float, t1: float, ts: np.ndarray, x0=0.0, v0=0.0) -> np.ndarray:
    wn, z = 2 * math.pi * ax.natural_freq_hz, ax.damping

    def f(t, y):
        r, _ = ax.reference(t)
        return [y[1], wn * wn * (r - y[0]) - 2 * z * wn * y[1]]

    sol = solve_ivp(f, (t0, t1), [x0, v0], t_eval=ts, rtol=1e-10, atol=1e-12, max_step=2e-6)
    return sol.y[0]


@pytest.mark.parametrize("step", [0.05, 1.0, 12.0])
def test_closed_form_matches_ode_integration(step):
    ax = SecondOrderAxis()
    ax.command(step, 0.001)
    ts = np.linspace(0.001, 0.001 + 0.008, 900)
    ref = _ode_positions(ax, 0.001, ts[-1], ts)
    got = np.array([ax.state(t)[0] for t in ts])
    assert np.max(np.abs(got - ref)) < 1e-6 * max(step, 1.0)


def test_default_small_step_settles_in_0p3_to_0p6_ms():
    for step in (0.05, 0.2):
        ax = SecondOrderAxis()
        ax.command(step, 0.0)
        bound = ax.settle_time_s(0.002)
        assert 0.3e-3 <= bound <= 0.6e-3
        ts = np.linspace(0, 3e-3, 30001)
        err = np.abs(np.array([ax.state(t)[0] for t in ts]) - step)
        last_out = ts[err >= 0.002].max()
        # The bound is never early and not much late.
        assert last_out <= bound <= last_out + 0.1e-3


def test_settle_time_follows_configured_dynamics_without_limits():
    # Pure second order: 2 % settling ~ 4 / (zeta wn); the envelope bound is ln(1/tol)/(zeta wn) with the amplitude factor.
    ax = SecondOrderAxis(1000.0, 0.7, 0.0, slew_deg_s=None, accel_deg_s2=None)
    ax.command(1.0, 0.0)
    zwn = 0.7 * 2 * math.pi * 1000.0
    amp = 1.0 / math.sqrt(1 - 0.7**2)
    assert ax.settle_time_s(0.02) == pytest.approx(math.log(amp / 0.02) / zwn, rel=1e-9)
    # Step response formula of an underdamped system.
    wd = 2 * math.pi * 1000.0 * math.sqrt(1 - 0.49)
    for t in (1e-4, 3e-4, 7e-4):
        expect = 1 - math.exp(-zwn * t) * (math.cos(wd * t) + zwn / wd * math.sin(wd * t))
        assert ax.state(t)[0] == pytest.approx(expect, abs=1e-12)


def test_large_steps_are_slew_limited():
    times = {}
    for step in (5.0, 10.0, 20.0):
        ax = SecondOrderAxis(slew_deg_s=4000.0, accel_deg_s2=4e7)
        ax.command(step, 0.0)
        times[step] = ax.settle_time_s(0.002)
        # The loop never moves much faster than the clamp (overshoot of tracking only).
        v = np.array([ax.state(t)[1] for t in np.linspace(0, times[step], 2000)])
        assert np.max(np.abs(v)) < 4000.0 * 1.1
    # Time grows by step / slew for each extra degree once cruising.
    assert times[20.0] - times[10.0] == pytest.approx(10.0 / 4000.0, rel=0.02)
    assert times[10.0] - times[5.0] == pytest.approx(5.0 / 4000.0, rel=0.02)


def test_reference_respects_velocity_and_acceleration_limits_and_recommand_is_continuous():
    ax = SecondOrderAxis(slew_deg_s=3000.0, accel_deg_s2=2e7)
    ax.command(10.0, 0.0)
    mid = 0.0015
    early = ax.state(0.001)
    x_before, v_before = ax.state(mid)
    ax.command(-4.0, mid)  # reverse in flight
    x_after, v_after = ax.state(mid)
    assert (x_after, v_after) == pytest.approx((x_before, v_before))
    ts = np.linspace(0, 0.02, 20001)
    r = np.array([ax.reference(t) for t in ts])
    assert np.max(np.abs(r[:, 1])) <= 3000.0 + 1e-6
    acc = np.diff(r[:, 1]) / np.diff(ts)
    assert np.max(np.abs(acc)) <= 2e7 * 1.001
    assert ax.state(0.02)[0] == pytest.approx(-4.0, abs=1e-6)
    # History before the re-command is kept (exposures that began earlier still see the old path).
    assert ax.state(0.001) == pytest.approx(early)


def test_position_noise_gain_and_offset():
    ax = SecondOrderAxis(noise_deg=0.00086, gain_error=0.004, offset_error_deg=-0.03, seed=3)
    ax.command(2.0, 0.0)
    ts = np.linspace(0.02, 1.02, 20000)
    wob = ax.wobble_deg(ts)
    assert np.std(wob) == pytest.approx(0.00086, rel=0.15)  # ~15 urad RMS
    assert ax.wobble_deg(0.5) == ax.wobble_deg(0.5)  # a function of time
    assert ax.actual_deg(0.5) == pytest.approx(2.0 + ax.wobble_deg(0.5), abs=1e-9)
    assert ax.mechanical_deg(0.5) == pytest.approx(1.004 * ax.actual_deg(0.5) - 0.03, abs=1e-12)


def test_sim_galvo_step_settles_within_configured_time():
    clock = ManualClock()
    g = SimGalvo("g", clock, natural_freq_hz=2500.0, damping=0.7, noise_deg=0.0, settle_tol_deg=0.002)
    with g:
        g.move_to(0.2, -0.1)
        t0 = clock.now_ns()
        st = g.wait_settled(timeout_s=0.01)
        dt_ms = (st.t_ns - t0) * 1e-6
        assert 0.3 <= dt_ms <= 0.6
        assert st.settled
        assert st.measured_deg == pytest.approx((0.2, -0.1), abs=0.002)
        # A long move takes longer than a short one: slew limited.
        g.move_to(10.0, 0.0)
        t1 = clock.now_ns()
        st = g.wait_settled(timeout_s=0.05)
        assert (st.t_ns - t1) * 1e-6 > 2.0
