"""Dynamic laser model, triangulation and laser calibration files."""

import numpy as np
import pytest

from foveate.calibration.galvo_geometry import PinholeCamera, nominal_xy_galvo_camera, reflection_matrix, unit
from foveate.calibration.light_section.laser_file import load_laser_calibration, save_laser_calibration
from foveate.calibration.light_section.laser_model import DynamicLaser, nominal_laser
from foveate.calibration.light_section.shapes import ShapeFitError, fit_plane, fit_sphere
from foveate.system.errors import ConfigError
from foveate.system.light_section.triangulate import POINT_DTYPE, Triangulator, intersect_sheet


def test_sheet_is_the_mirror_image_of_the_emitted_sheet():
    laser = nominal_laser()
    rng = np.random.default_rng(0)
    for a in (-7.0, 0.0, 3.3):
        n, d = laser.sheet(a)
        # Points on the emitted sheet, reflected by the mirror, lie on the swept sheet.
        n0 = unit(laser.normal0)
        P = rng.normal(0, 500, (20, 3))
        P -= ((P @ n0) - laser.d0)[:, None] * n0
        M = reflection_matrix(*laser.mirror.plane(a))
        Q = P @ M[:3, :3].T + M[:3, 3]
        assert np.max(np.abs(Q @ n - d)) < 1e-9


def test_vectorised_sheets_match_and_turn_twice_the_mechanical_angle():
    laser = nominal_laser()
    cmds = np.linspace(-8, 8, 17)
    n, d = laser.sheets(cmds)
    for k, a in enumerate(cmds):
        n1, d1 = laser.sheet(a)
        assert np.allclose(n[k], n1, atol=1e-12) and d[k] == pytest.approx(d1, abs=1e-9)
    # The sheet contains the mirror axis (ideal layout) and turns by 2 deg per mechanical deg.
    ang = np.degrees(np.arccos(np.clip(n[:-1] @ n[-1], -1, 1)))
    assert ang[0] == pytest.approx(32.0, abs=1e-9)
    assert np.allclose(n @ laser.mirror.axis_dir, 0.0, atol=1e-12)


def test_triangulation_recovers_points_and_rejects_grazing_rays():
    cam = PinholeCamera.from_fov(640, 512, 12.0)
    g = nominal_xy_galvo_camera(cam)
    laser = nominal_laser()
    tri = Triangulator(g, laser)
    a = 1.2
    n, d = laser.sheet(a)
    # Points on the sheet in front of the camera.
    o, los = g.line_of_sight(0.5, -0.3)
    P0 = o + los * 1900.0
    P0 = P0 - (P0 @ n - d) * n
    t = unit(np.cross(n, [1.0, 0.0, 0.0]))
    X = P0 + np.linspace(-80, 80, 9)[:, None] * t
    uv = g.project(X, 0.5, -0.3)
    Y, ok = tri.points(uv, 0.5, -0.3, a)
    assert ok.all()
    assert np.max(np.linalg.norm(Y - X, axis=1)) < 1e-6
    rec = tri.records(uv, np.ones(len(uv)), 3, 0.5, -0.3, a)
    assert rec.dtype == POINT_DTYPE and np.all(rec["view"] == 3) and np.all(rec["laser_deg"] == a)
    assert np.allclose(rec["u"], uv[:, 0], atol=1e-3)
    # A ray nearly parallel to the plane is rejected.
    _, ok = intersect_sheet(np.zeros(3), np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), np.array([0.0, 0.03, -1.0]) /
                            np.linalg.norm([0.0, 0.03, -1.0]), -1000.0, min_angle_deg=5.0)
    assert ok.tolist() == [False, True]


def test_laser_file_round_trip_and_clear_errors(tmp_path):
    laser = nominal_laser()
    p = save_laser_calibration(tmp_path / "laser.yaml", laser, {"rms_mm": 0.01}, notes=["test"])
    model, data = load_laser_calibration(p)
    for a in (-3.0, 2.0):
        n0, d0 = laser.sheet(a)
        n1, d1 = model.sheet(a)
        assert np.allclose(n0, n1, atol=1e-12) and d0 == pytest.approx(d1, abs=1e-9)
    assert data["residuals"]["rms_mm"] == 0.01 and data["kind"] == "laser_galvo"
    text = p.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("gain: 1.0", "gain: -1.0"))
    with pytest.raises(ConfigError, match=r"bad.yaml: laser.mirror.gain"):
        load_laser_calibration(bad)
    bad.write_text(text.replace("sheet_d0_mm", "sheet_d_mm"))
    with pytest.raises(ConfigError, match=r"bad.yaml: laser.sheet_d_mm: unknown key"):
        load_laser_calibration(bad)
    bad.write_text(text.replace("kind: laser_galvo", "kind: galvo_camera"))
    with pytest.raises(ConfigError, match="kind"):
        load_laser_calibration(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_laser_calibration(tmp_path / "missing.yaml")


def test_shape_fits():
    rng = np.random.default_rng(3)
    d = rng.normal(size=(2000, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    X = np.array([10.0, -5.0, 1900.0]) + 50.8 * d + rng.normal(0, 0.05, (2000, 3))
    X[:20] += 5.0  # outliers
    sf = fit_sphere(X)
    assert sf.radius == pytest.approx(50.8, abs=0.01)
    assert np.linalg.norm(sf.centre - [10, -5, 1900]) < 0.01
    P = np.c_[rng.uniform(-100, 100, (500, 2)), rng.normal(2000, 0.05, 500)]
    pf = fit_plane(P)
    assert np.allclose(pf.normal, [0, 0, -1], atol=1e-3) and pf.rms_mm == pytest.approx(0.05, rel=0.2)
    with pytest.raises(ShapeFitError):
        fit_plane(np.zeros((2, 3)))


def test_dynamic_laser_is_frozen_value_type():
    laser = nominal_laser()
    assert isinstance(laser, DynamicLaser)
    with pytest.raises(Exception):
        laser.d0 = 3.0  # type: ignore[misc]
