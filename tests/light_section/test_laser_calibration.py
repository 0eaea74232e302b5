"""Laser calibration on simulated board captures: planes per command, then the dynamic model."""

import numpy as np
import pytest

from foveate.calibration.galvo_geometry import PinholeCamera, nominal_xy_galvo_camera
from foveate.calibration.light_section.laser_calibration import (
    LaserCalibrationError, StripeObservation, calibrate_laser, fit_dynamic_laser, sheet_residuals,
)
from foveate.calibration.light_section.laser_model import nominal_laser
from foveate.hardware.sim.light_section.calibrate import simulated_laser_calibration, simulated_laser_observations
from foveate.hardware.sim.light_section.scene import LightSectionReferenceScene
from foveate.system.light_section.scan import laser_commands_through
from foveate.system.light_section.triangulate import Triangulator


@pytest.fixture(scope="module")
def setup():
    cam = nominal_xy_galvo_camera(PinholeCamera.from_fov(320, 256, 12.0))
    scene = LightSectionReferenceScene.from_settings(seed=0)  # laser mounted with random errors
    obs = simulated_laser_observations(scene, cam, nominal_laser(), laser_steps=7,
                                       views=((-4.5, -5.0), (4.5, 5.0), (0.0, 0.0)))
    return cam, scene, obs


def volume_sheet_error(cam, true, model, n=20000):
    """RMS and max distance (mm) between the true and modelled sheets over the measuring volume."""
    rng = np.random.default_rng(1)
    X = rng.uniform([-550, -650, 1600], [550, 650, 2250], (n, 3))
    a = laser_commands_through(Triangulator(cam, true), X, (-20, 20))
    ok = np.isfinite(a)
    r = sheet_residuals(model, a[ok], X[ok])
    return float(np.sqrt(np.mean(r**2))), float(np.max(np.abs(r)))


def test_calibration_recovers_the_mounted_laser(setup):
    cam, scene, obs = setup
    true = scene.optics.model
    init = nominal_laser()
    rms0, _ = volume_sheet_error(cam, true, init)
    cal = calibrate_laser(cam, obs, init)
    rms, mx = volume_sheet_error(cam, true, cal.fit.model)
    assert rms0 > 2.0  # the design is millimetres off
    assert rms < 0.1 and mx < 0.5, (rms, mx)  # 320 x 256 px, three views (full resolution: ~0.015 mm RMS)
    # Residuals: stripe noise at 4x coarser pixels, a fraction of a millimetre; per-command planes fitted.
    assert cal.fit.rms_mm < 0.4
    assert len(cal.planes) >= 10
    assert np.median([p["model_angle_deg"] for p in cal.planes]) < 0.1
    assert set(cal.fit.sigma) and cal.fit.n_inliers > 0.95 * cal.fit.n_points


def test_too_little_data_is_a_clear_error(setup):
    cam, scene, obs = setup
    with pytest.raises(LaserCalibrationError, match="3 laser commands"):
        fit_dynamic_laser(np.zeros(100), np.zeros((100, 3)), nominal_laser())
    with pytest.raises(LaserCalibrationError, match="no stripe observations"):
        calibrate_laser(cam, [], nominal_laser())
    one = [StripeObservation(o.laser_deg, o.camera_deg, o.uv[:2], o.board_T) for o in obs[:2]]
    with pytest.raises(LaserCalibrationError):
        calibrate_laser(cam, one, nominal_laser())


def test_simulated_calibration_writes_a_loadable_file(tmp_path):
    from foveate.calibration.light_section.laser_file import load_laser_calibration

    cam = nominal_xy_galvo_camera(PinholeCamera.from_fov(256, 200, 12.0))
    scene = LightSectionReferenceScene.from_settings(seed=1)
    model, stats = simulated_laser_calibration(scene, cam, tmp_path / "laser.yaml")
    loaded, data = load_laser_calibration(tmp_path / "laser.yaml")
    assert data["residuals"]["points"] == stats["points"] and data["source"]["simulated"] is True
    rms, _ = volume_sheet_error(cam, scene.optics.model, loaded)
    assert rms < 0.1
