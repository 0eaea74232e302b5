"""Joint refinement of camera galvo and laser on a simulated calibration (corners + stripes on the same boards)."""

from dataclasses import replace

import numpy as np
import pytest

from foveate.calibration.capture_plan import board_for_view, plan_galvo_capture, simulate_views
from foveate.calibration.galvo_fit import fit_galvo
from foveate.calibration.galvo_geometry import GalvoCamera
from foveate.calibration.light_section.joint import BoardStripe, joint_refine, laser_in_model_frame
from foveate.calibration.light_section.laser_calibration import StripeObservation, calibrate_laser
from foveate.calibration.light_section.laser_model import nominal_laser
from foveate.hardware.sim.light_section.capture import capture_board_stripes
from foveate.hardware.sim.light_section.laser import SimLaserOptics, perturbed_laser
from foveate.hardware.sim.light_section.scene import LightSectionScene
from foveate.hardware.sim.light_section.scenes import plane_scene
from foveate.hardware.sim.optics import galvo_camera
from foveate.system.light_section.scan import laser_commands_through
from foveate.system.light_section.stripe import StripeParams, extract_stripe
from foveate.system.light_section.triangulate import Triangulator


def in_camera_frame(g: GalvoCamera) -> tuple[GalvoCamera, np.ndarray]:
    """The same galvo camera with the world = the real camera frame (the calibration's gauge), and T_cw."""
    T = g.T_cw

    def tm(m):
        return replace(m, axis_point=T[:3, :3] @ m.axis_point + T[:3, 3], axis_dir=T[:3, :3] @ m.axis_dir,
                       normal0=T[:3, :3] @ m.normal0)

    return GalvoCamera(g.camera, tm(g.mirror1), tm(g.mirror2), np.eye(4)), T


def rigid_rms(A, B):
    """RMS distance between point sets after the best rigid alignment (the calibration's world is a gauge)."""
    ca, cb = A.mean(0), B.mean(0)
    U, _, Vt = np.linalg.svd((A - ca).T @ (B - cb))
    D = np.diag([1, 1, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return float(np.sqrt(np.mean(np.sum(((A - ca) @ R.T - (B - cb)) ** 2, axis=1))))


@pytest.fixture(scope="module")
def calibration_data():
    true_rig = galvo_camera(320, 256, 12.0, None, -90.0, (1.004, 0.997), (0.02, -0.015), seed=4, error_scale=1.0)
    g_true, T_cw = in_camera_frame(true_rig)
    laser_true = perturbed_laser(SimLaserOptics(), seed=5).model.transformed(T_cw)
    optics = SimLaserOptics(model=laser_true)
    board = board_for_view(g_true.camera, 1700.0)
    plan = plan_galvo_capture(((-9.0, 9.0), (-9.0, 9.0)), g_true.camera, grid=(3, 3), local=3,
                              distances_mm=(1700.0, 2000.0, 2250.0), tilt_deg=20.0, seed=1)
    views, true_poses = simulate_views(g_true, board, plan, noise_px=0.15, seed=2)
    # Stripes on the same boards, at each placement's centre command, laser swept across the board.
    scene = LightSectionScene(plane_scene(), optics, speckle_contrast=0.25)
    tri = Triangulator(g_true, laser_true)
    stripes = []
    for k, pl in enumerate(plan):
        T = true_poses[pl.name]
        centre = T[:3, :3] @ np.array([board.size_mm[0] / 2, board.size_mm[1] / 2, 0.0]) + T[:3, 3]
        T_c = T.copy()
        T_c[:3, 3] = centre
        a0 = float(laser_commands_through(tri, centre[None], (-20, 20))[0])
        cmds = a0 + np.linspace(-0.6, 0.6, 5)
        for c in capture_board_stripes(g_true, scene, pl.centre_deg, T_c, pl.name, cmds, seed=k,
                                       size_mm=board.size_mm):
            uv, _ = extract_stripe(c.image, StripeParams(axis="rows")).uv()
            stripes.append(BoardStripe(pl.name, pl.centre_deg, c.laser_deg, uv))
    return g_true, laser_true, views, stripes, T_cw


@pytest.fixture(scope="module")
def fits(calibration_data):
    g_true, laser_true, views, stripes, T_cw = calibration_data
    fit = fit_galvo(views, g_true.camera, (g_true.camera.width, g_true.camera.height), fit_intrinsics=False)
    design = galvo_camera(320, 256, 12.0, None, -90.0, (1.0, 1.0), (0.0, 0.0), seed=0, error_scale=0.0)
    init = laser_in_model_frame(nominal_laser(), design, fit.model)  # the design, in the calibration's world
    obs = [StripeObservation(s.laser_deg, s.camera_deg, s.uv, fit.board_poses[s.pose], s.pose) for s in stripes]
    laser = calibrate_laser(fit.model, obs, init).fit.model
    return fit, laser, joint_refine(views, fit, laser, stripes)


def held_out_errors(calibration_data, fits):
    """Rigid-aligned RMS error (mm) of true volume points triangulated with the staged and the joint models."""
    g_true, laser_true, *_ = calibration_data
    fit, laser, joint = fits
    rng = np.random.default_rng(7)
    pts, staged, joined = [], [], []
    for view in [(-4.0, -3.0), (0.0, 0.0), (4.0, 3.0)]:
        o, d = g_true.line_of_sight(*view)
        X = o + d * rng.uniform(1700, 2250, (60, 1)) + rng.normal(0, 80, (60, 3))
        a = laser_commands_through(Triangulator(g_true, laser_true), X, (-20, 20))
        ok = np.isfinite(a)
        uv = g_true.project(X[ok], *view)
        for x, u, aa in zip(X[ok], uv, a[ok]):
            p1, k1 = Triangulator(fit.model, laser).points(u[None], *view, aa)
            p2, k2 = Triangulator(joint.camera, joint.laser).points(u[None], *view, aa)
            if k1[0] and k2[0]:
                pts.append(x)
                staged.append(p1[0])
                joined.append(p2[0])
    pts, staged, joined = map(np.array, (pts, staged, joined))
    assert len(pts) > 100
    return rigid_rms(staged, pts), rigid_rms(joined, pts)


@pytest.mark.slow
def test_joint_refinement_fits_corners_and_stripes_together(fits):
    fit, laser, joint = fits
    b, a = joint.before, joint.after
    # sigmas estimated from the staged residuals: the corners were simulated with 0.15 px noise
    assert 0.12 < b["sigma_px"] < 0.18
    assert b["stripe_sigma_within_mm"] > 0 and b["stripe_sigma_between_mm"] > 0
    # stripe pixels off their boards (the capture has some at board edges, tens of mm off) are dropped first
    assert b["rejected_stripe_points"] > 0 and b["stripe_rms_mm"] < 1.0
    assert a["reprojection_rms_px"] < 0.3  # corners still fitted
    assert a["stripe_rms_mm"] < 1.02 * b["stripe_rms_mm"]
    # board poses are not refined by default: the stripes cannot tell a pose error from a stripe's own offset
    assert set(joint.board_poses) == set(fit.board_poses)
    for p, T in joint.board_poses.items():
        np.testing.assert_allclose(T, fit.board_poses[p], atol=1e-9)


@pytest.mark.slow
def test_joint_refinement_keeps_held_out_points_near_staged(calibration_data, fits):
    # The step used to bend the models where there are no boards (held-out error twice the staged one after
    # 10 evaluations, ten times after 40); with measured sigmas and fixed board poses it stays close.
    e_staged, e_joint = held_out_errors(calibration_data, fits)
    assert e_joint <= 1.1 * e_staged, (e_staged, e_joint)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known limitation (docs/light_section.md): the staged models are already "
                   "consistent; over 8 simulated captures the joint step changes held-out errors by -6 % .. +29 %")
def test_joint_refinement_improves_held_out_points(calibration_data, fits):
    e_staged, e_joint = held_out_errors(calibration_data, fits)
    assert e_joint < e_staged, (e_staged, e_joint)
