"""Galvo geometry against first principles and OpenCV reference numbers."""

import cv2
import numpy as np
import pytest

from foveate.calibration.galvo_geometry import (
    Mirror,
    PinholeCamera,
    direction_to_az_el_deg,
    nominal_xy_galvo_camera,
    reflection_matrix,
    transform_plane,
    unit,
)


@pytest.fixture
def gcam():
    cam = PinholeCamera.from_fov(256, 256, 3.2, dist=[-0.05, 0.01, 0.001, -0.0005, 0.0])
    return nominal_xy_galvo_camera(cam)


def test_reflection_is_an_involution_with_det_minus_one():
    M = reflection_matrix(unit([1, 2, 3]), 4.0)
    assert np.allclose(M @ M, np.eye(4))
    assert np.linalg.det(M[:3, :3]) == pytest.approx(-1.0)


def test_virtual_camera_is_a_proper_rigid_motion(gcam):
    for tx, ty in [(0, 0), (5, -3), (-10, 8)]:
        R = gcam.virtual_extrinsics(tx, ty)[:3, :3]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)


@pytest.mark.parametrize("tx,ty", [(0.0, 0.0), (3.5, -2.0), (-12.0, 9.0)])
def test_projection_matches_opencv_projectpoints(gcam, tx, ty):
    rng = np.random.default_rng(0)
    origin, d = gcam.line_of_sight(tx, ty)
    X = origin + np.outer(rng.uniform(2000, 8000, 50), d) + rng.normal(0, 30, (50, 3))
    rvec, tvec = gcam.virtual_rvec_tvec(tx, ty)
    ref, _ = cv2.projectPoints(X, rvec, tvec, gcam.camera.K, gcam.camera.dist)
    assert np.allclose(gcam.project(X, tx, ty), ref.reshape(-1, 2), atol=1e-8)


def test_pixel_rays_round_trip(gcam):
    uv = np.array([[10.5, 20.0], [128.0, 128.0], [250.0, 3.0]])
    origin, dirs = gcam.pixel_rays(uv, 4.0, -6.0)
    X = origin + dirs * np.array([[1500.0], [3000.0], [9000.0]])
    assert np.allclose(gcam.project(X, 4.0, -6.0), uv, atol=1e-6)


def test_zero_command_looks_forward_and_deflection_is_twice_mechanical(gcam):
    _, d0 = gcam.line_of_sight(0.0, 0.0)
    assert np.allclose(d0, [0, 0, 1], atol=1e-3)  # principal point is a half pixel off the centre
    for axis in range(2):
        cmd = [0.0, 0.0]
        cmd[axis] = 5.0
        _, d = gcam.line_of_sight(*cmd)
        angle = np.degrees(np.arccos(np.clip(d @ d0, -1, 1)))
        assert angle == pytest.approx(10.0, abs=1e-6)
    az, el = direction_to_az_el_deg(np.stack([gcam.line_of_sight(5.0, 0.0)[1], gcam.line_of_sight(0.0, 5.0)[1]]))
    assert abs(az[0]) == pytest.approx(10.0, abs=0.01) and abs(el[0]) < 0.01  # mirror 1 pans
    assert abs(el[1]) == pytest.approx(10.0, abs=0.01) and abs(az[1]) < 0.01  # mirror 2 tilts


def test_mirror_angle_model():
    m = Mirror(np.zeros(3), np.array([0, 0, 1.0]), unit([1, 0, 0]), surface_offset_mm=2.0, gain=1.1, offset_deg=0.5)
    assert m.angle_deg(10.0) == pytest.approx(11.5)
    n, d = m.plane(0.0)
    assert np.allclose(n, unit([np.cos(np.radians(0.5)), np.sin(np.radians(0.5)), 0]))
    assert d == pytest.approx(2.0)


def test_transform_plane_matches_point_mapping():
    rng = np.random.default_rng(1)
    n, d = unit([0.2, -0.3, 1.0]), 500.0
    M = reflection_matrix(unit([1, 1, 0]), 20.0)
    n2, d2 = transform_plane(M, n, d)
    # points on the plane map onto the transformed plane
    basis = np.linalg.svd(n[None, :])[2][1:]
    P = n * d + rng.normal(0, 100, (10, 2)) @ basis
    P2 = P @ M[:3, :3].T + M[:3, 3]
    assert np.allclose(P2 @ n2, d2)
