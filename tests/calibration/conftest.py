"""Shared fixtures: a perturbed galvo camera and synthetic captures of it."""

from dataclasses import replace

import numpy as np
import pytest

from foveate.calibration.galvo_geometry import Mirror, PinholeCamera, nominal_xy_galvo_camera, unit

LIMITS = ((-15.0, 15.0), (-11.0, 11.0))


def perturbed_galvo(cam: PinholeCamera, seed: int = 3):
    """The nominal XY scanner with tilted axes and normals, shifted points, surface offsets, gain and offset errors."""
    g = nominal_xy_galvo_camera(cam)
    rng = np.random.default_rng(seed)

    def pert(m: Mirror) -> Mirror:
        u = unit(m.axis_dir + rng.normal(0, 0.01, 3))
        n0 = np.asarray(m.normal0) - (np.asarray(m.normal0) @ u) * u
        return Mirror(np.asarray(m.axis_point) + rng.normal(0, 0.5, 3), u, unit(n0 + 0.003 * u), 0.8,
                      1 + rng.normal(0, 0.01), rng.normal(0, 0.3))

    return replace(g, mirror1=pert(g.mirror1), mirror2=pert(g.mirror2))


@pytest.fixture(scope="session")
def search_camera():
    return PinholeCamera.from_fov(256, 256, 3.2, dist=[-0.05, 0.01, 0.001, -0.0005, 0.0])


@pytest.fixture(scope="session")
def true_galvo(search_camera):
    return perturbed_galvo(search_camera)
