"""The light-section twin: exact ray casting, and stripes where geometry says they are."""

import numpy as np
import pytest

from foveate.calibration.galvo_geometry import unit
from foveate.hardware.sim.light_section.scenes import reference_scene
from foveate.hardware.sim.light_section.surfaces import BumpPatch, Box, Sphere
from foveate.system.config import parse_rig
from foveate.system.light_section.scan import laser_commands_through
from foveate.system.light_section.stripe import StripeParams, extract_stripe
from foveate.system.light_section.triangulate import Triangulator
from foveate.system.rig import Rig


def rays_towards(targets, origin=np.zeros(3)):
    return origin, np.stack([unit(t - origin) for t in targets])


def test_reference_scene_fits_the_measuring_volume():
    g = reference_scene()
    lo, hi = (np.asarray(v) for v in g.volume_mm)
    assert np.allclose(hi - lo, [1100, 1300, 650])
    for s in g.surfaces:
        blo, bhi = s.bounds()
        assert np.all(blo >= lo - 1e-6) and np.all(bhi <= hi + 1e-6), s.name


def test_hits_lie_on_the_surfaces_and_are_the_nearest():
    g = reference_scene()
    rng = np.random.default_rng(0)
    o = np.array([0.0, 0.0, -37.0])
    d = np.stack([unit(v) for v in np.c_[rng.uniform(-0.3, 0.3, (4000, 2)), np.ones(4000)]])
    t, nrm, obj = g.cast(o, d)
    hit = np.isfinite(t)
    assert hit.mean() > 0.5
    X = o + t[hit, None] * d[hit]
    dist, idx = g.distance(X)
    assert np.max(dist) < 1e-6
    # The surface reported is the one the point lies on, and nothing is hit earlier.
    on_own = np.array([g.surfaces[k].distance(X[i:i + 1])[0] for i, k in enumerate(obj[hit])])
    assert np.max(on_own) < 1e-6
    for s in g.surfaces:
        ts, _ = s.intersect(o, d[hit])
        assert np.all(ts >= t[hit] - 1e-9)
    # Normals are unit and face the camera.
    assert np.allclose(np.linalg.norm(nrm[hit], axis=1), 1.0)
    assert np.all(np.einsum("ij,ij->i", nrm[hit], d[hit]) <= 1e-12)


def test_sphere_box_and_freeform_against_closed_forms():
    s = Sphere("s", centre=(10.0, -20.0, 2000.0), radius=50.0)
    o, d = rays_towards(np.array([[10.0, -20.0, 2000.0], [40.0, -20.0, 2000.0]]))
    t, n = s.intersect(o, d)
    assert t[0] == pytest.approx(np.linalg.norm([10, -20, 2000]) - 50.0, abs=1e-9)
    assert np.allclose(n[0], -d[0], atol=1e-12)
    b = Box("b", lo=(0.0, 0.0, 2000.0), hi=(100.0, 50.0, 2030.0))
    o, d = rays_towards(np.array([[50.0, 25.0, 2000.0]]))
    t, n = b.intersect(o, d)
    assert (o + t[0] * d[0])[2] == pytest.approx(2000.0, abs=1e-9)
    assert np.allclose(n[0], [0, 0, -1])
    assert b.distance(np.array([[50.0, 25.0, 1990.0], [50.0, 25.0, 2010.0]])) == pytest.approx([10.0, 10.0])
    f = BumpPatch("f", cx=0.0, cy=0.0, z0=2000.0)
    rng = np.random.default_rng(1)
    o, d = rays_towards(np.c_[rng.uniform(-140, 140, (500, 2)), np.full(500, 2000.0)])
    t, n = f.intersect(o, d)
    X = o + t[:, None] * d
    h, hx, hy = f.height(X[:, 0], X[:, 1])
    assert np.max(np.abs(X[:, 2] - (f.z0 - h))) < 1e-8
    assert np.max(f.distance(X)) < 1e-8
    # Distance of points moved along the normal by a known amount.
    nn = np.stack([hx, hy, np.ones_like(hx)], axis=1)
    nn /= np.linalg.norm(nn, axis=1, keepdims=True)
    assert np.allclose(f.distance(X + 0.7 * nn), 0.7, atol=1e-6)


def _plane_rig(noise: bool, width=640, height=512):
    import yaml
    from importlib import resources

    text = (resources.files("foveate.hardware") / "rigs" / "sim_light_section.yaml").read_text()
    data = yaml.safe_load(text)
    data["sim"].update(scene="light_section_plane", z_mm=1900.0, tilt_deg=10.0)
    cam = data["devices"]["scan_camera"]["settings"]
    cam.update(width=width, height=height)
    if not noise:
        data["sim"]["speckle_contrast"] = 0.0
        data["sim"]["dac_bits"] = 0
        cam.update(noise_std=0.0, full_well_e=0.0)
        for g in ("scan_galvo", "laser_galvo"):
            data["devices"][g]["settings"]["noise_deg"] = 0.0
    return Rig(parse_rig(data, source="test-rig"))


def _expected_columns(twin, cam_name, laser_cmd, cam_cmd, height):
    """Where geometry puts the stripe: the sheet-plane line projected through the true camera, per row."""
    scene = twin.scene
    n_s, d_s = scene.true_laser_model(twin).sheet(laser_cmd)
    plane = scene.geometry.surfaces[0]
    n_p, d_p = plane.plane()
    direction = unit(np.cross(n_s, n_p))
    # A point on both planes: least-norm solution of the 2 x 3 system.
    A = np.stack([n_s, n_p])
    p0 = A.T @ np.linalg.solve(A @ A.T, [d_s, d_p])
    pts = p0 + np.linspace(-900, 900, 2001)[:, None] * direction
    uv = twin.galvo_camera(cam_name).project(pts, *cam_cmd)
    order = np.argsort(uv[:, 1])
    return np.interp(np.arange(height), uv[order, 1], uv[order, 0], left=np.nan, right=np.nan)


@pytest.mark.parametrize("noise,tol_px", [(False, 0.02), (True, 0.4)])
def test_stripe_on_a_plane_lies_where_geometry_says(noise, tol_px):
    rig = _plane_rig(noise)
    with rig:
        twin = rig.context.shared["sim.twin"]
        cam, galvo, laser_galvo, laser = (rig.role(r) for r in ("scan_camera", "scan_galvo", "laser_galvo", "laser"))
        galvo.move_to(1.0, -0.5)
        galvo.wait_settled(0.05)
        laser.on()
        # Laser command whose sheet crosses the middle of the view on the plane.
        o, d = twin.galvo_camera(cam.name).line_of_sight(1.0, -0.5)
        n_p, d_p = twin.scene.geometry.surfaces[0].plane()
        P = o + d * (d_p - n_p @ o) / (n_p @ d)
        tri = Triangulator(twin.galvo_camera(cam.name), twin.scene.true_laser_model(twin))
        a0 = float(laser_commands_through(tri, P[None], (-20.0, 20.0))[0])
        for a in (a0 - 0.5, a0, a0 + 0.5):
            laser_galvo.move_to(a, 0.0)
            laser_galvo.wait_settled(0.05)
            frame = cam.read()
            s = extract_stripe(frame.image, StripeParams(method="centroid", axis="rows"))
            expect = _expected_columns(twin, cam.name, a, (1.0, -0.5), cam.height)
            ok = s.valid & np.isfinite(expect)
            assert ok.sum() > 0.9 * cam.height
            err = s.position[ok] - expect[ok]
            assert np.sqrt(np.mean(err**2)) < tol_px, (a, np.sqrt(np.mean(err**2)))
        laser.off()
        dark = cam.read()
        assert dark.image.max() < 60  # no stripe with the laser off


def test_stripe_follows_laser_galvo_and_labels_name_surfaces():
    rig = _plane_rig(False, 320, 256)
    with rig:
        cam, laser_galvo, laser = rig.role("scan_camera"), rig.role("laser_galvo"), rig.role("laser")
        laser.on()
        pos = []
        for a in (-1.0, 0.0, 1.0):
            laser_galvo.move_to(a, 0.0)
            laser_galvo.wait_settled(0.05)
            f = cam.read()
            pos.append(np.nanmedian(extract_stripe(f.image).position))
        assert np.all(np.diff(pos) != 0) and np.all(np.sign(np.diff(pos)) == np.sign(pos[1] - pos[0]))
        assert set(np.unique(f.meta["labels"])) <= {0, 1}
