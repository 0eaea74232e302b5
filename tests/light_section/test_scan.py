"""The scan procedure end to end on the twin, the PLY output and the ``foveate scan`` command."""

import json
from importlib import resources

import numpy as np
import pytest
import yaml

from foveate.system.config import parse_rig
from foveate.system.light_section.accuracy import accuracy_report
from foveate.system.light_section.cloud_io import read_ply, write_ply
from foveate.system.light_section.scan import ScanSettings, plan_scan, points_xyz, run_scan, stripe_axis
from foveate.system.light_section.stripe import StripeParams
from foveate.system.light_section.triangulate import POINT_DTYPE, Triangulator
from foveate.system.rig import Rig
from foveate.tools.cli import main


def rig_data(width=320, height=256, **sim):
    data = yaml.safe_load((resources.files("foveate.hardware") / "rigs" / "sim_light_section.yaml").read_text())
    data["devices"]["scan_camera"]["settings"].update(width=width, height=height)
    data["sim"].update(sim)
    return data


def test_plan_covers_the_volume_and_sweeps_each_view():
    with Rig(parse_rig(rig_data(), "test")) as rig:
        twin = rig.context.shared["sim.twin"]
        tri = Triangulator(twin.galvo_camera("scan_camera"), twin.scene.true_laser_model(twin))
        plan = plan_scan(tri, ScanSettings(stripe_spacing_mm=4.0), rig.role("scan_galvo").limits_deg,
                         rig.role("laser_galvo").limits_deg[0])
        assert stripe_axis(tri, plan) == "rows"
    assert len(plan) >= 12
    # Every corner of the volume (front and back) is seen by some view.
    lo, hi = np.array([-550, -650, 1600.0]), np.array([550, 650, 2250.0])
    corners = np.array([[x, y, z] for x in (lo[0] + 30, hi[0] - 30) for y in (lo[1] + 30, hi[1] - 30)
                        for z in (lo[2], hi[2])])
    cam = tri.camera
    for X in corners:
        seen = False
        for v in plan:
            u, w = cam.project(X[None], *v.camera_deg)[0]
            seen |= 0 <= u < cam.camera.width and 0 <= w < cam.camera.height
        assert seen, X
    # Each view's laser sweep is monotonic with a step that gives the asked spacing.
    for v in plan:
        steps = np.diff(v.laser_deg)
        assert np.all(steps > 0) or np.all(steps < 0)
        assert 0.02 < abs(steps[0]) < 0.12


def test_reduced_resolution_scan_is_accurate(tmp_path):
    with Rig(parse_rig(rig_data(), "test")) as rig:
        twin = rig.context.shared["sim.twin"]
        tri = Triangulator(twin.galvo_camera("scan_camera"), twin.scene.true_laser_model(twin))
        settings = ScanSettings(stripe_spacing_mm=6.0, max_views=2, stripe=StripeParams(axis="rows"))
        plan = plan_scan(tri, settings, rig.role("scan_galvo").limits_deg, rig.role("laser_galvo").limits_deg[0])
        res = run_scan(rig, tri, plan, settings, progress=False)
        assert not rig.role("laser").is_on  # switched off after the scan
        geometry = twin.scene.geometry
    assert res.stats["views"] == 2 and res.stats["frames"] == sum(len(v.laser_deg) for v in plan)
    assert res.points.size > 10000
    assert set(np.unique(res.points["view"])) == {0, 1}
    rep = accuracy_report(points_xyz(res.points), geometry)
    # 320 x 256 px: pixels 4x larger than the full rig's, so the noise is larger too.
    assert rep["outlier_fraction"] < 0.01
    assert rep["overall"]["rms_mm"] < 0.8, rep["overall"]
    p = write_ply(tmp_path / "c.ply", res.points)
    back = read_ply(p)
    assert back.dtype == POINT_DTYPE and np.array_equal(back, res.points)


def test_scan_command_writes_cloud_preview_and_report(tmp_path, capsys):
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(rig_data(256, 200)))
    out = tmp_path / "scan" / "cloud.ply"
    assert main(["scan", "--config", str(rig), "--scene", "spheres", "--out", str(out), "--max-views", "1",
                 "--spacing-mm", "10", "--report", "--no-progress", "--method", "steger"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["scene"] == "light_section_spheres" and summary["views"] == 1
    assert read_ply(out).size == summary["points"] > 1000
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rep = json.loads((tmp_path / "scan" / "cloud_report.json").read_text())
    assert rep["summary"]["spheres_measured"] >= 1
    assert "| feature |" in (tmp_path / "scan" / "cloud_report.md").read_text()


@pytest.mark.parametrize("argv,msg", [
    (["--scene", "nowhere"], "unknown scene 'nowhere'"),
    (["--config", "hardware/rigs/sim_default.yaml"], "no device has role 'scan_camera'"),
    (["--spacing-mm", "0"], "--spacing-mm must be > 0"),
])
def test_scan_command_errors_are_one_line(argv, msg, tmp_path, capsys):
    assert main(["scan", "--out", str(tmp_path / "c.ply"), *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_scan_command_rejects_non_ply_output(tmp_path, capsys):
    assert main(["scan", "--out", str(tmp_path / "c.txt")]) == 2
    assert "expected a .ply file" in capsys.readouterr().err


@pytest.mark.slow
def test_full_volume_reference_scan_meets_the_accuracy_goal(tmp_path):
    """The acceptance scan: full 1280 x 1024 camera, all views over 1100 x 1300 x 650 mm, realistic noise."""
    out = tmp_path / "ref.ply"
    assert main(["scan", "--scene", "reference", "--out", str(out), "--spacing-mm", "8", "--report",
                 "--no-progress"]) == 0
    rep = json.loads((tmp_path / "ref_report.json").read_text())
    s = rep["summary"]
    assert rep["scan"]["views"] >= 12
    assert s["spheres_measured"] == 6 and s["steps_measured"] == 5
    assert s["rms_point_to_surface_mm"] <= 0.3
    assert s["max_abs_sphere_radius_error_mm"] <= 0.3
    assert s["max_abs_step_height_error_mm"] <= 0.3
    assert rep["outlier_fraction"] < 0.01
