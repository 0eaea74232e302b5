"""End to end on the twin: foveate calibrate capture -> galvo -> check, against the twin's true geometry."""

import json

import numpy as np
import pytest

from foveate.calibration.calib_file import load_calibration
from foveate.calibration.galvo_procedure import rays_report
from foveate.system.rig import Rig
from foveate.tools.cli import main


@pytest.mark.slow
def test_twin_capture_fit_check(tmp_path, capsys):
    fit_dir, check_dir, calib = tmp_path / "fit", tmp_path / "check", tmp_path / "galvo.yaml"
    # 12 placements x 9 commands x 4 frames to fit, 6 other placements to check (~0.02 s per twin image)
    assert main(["calibrate", "capture", "--out", str(fit_dir), "--grid", "4x3", "--no-progress"]) == 0
    assert main(["calibrate", "capture", "--out", str(check_dir), "--grid", "3x2", "--seed", "7", "--no-progress"]) == 0
    assert "measured_x_deg" in (fit_dir / "captures.csv").read_text().splitlines()[0]
    capsys.readouterr()
    assert main(["calibrate", "galvo", str(fit_dir), "--out", str(calib), "--json", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["views"] == 108 and any("offset_deg" in t for t in summary["not_determined"])
    assert all((tmp_path / f"galvo_{k}.png").read_bytes()[:4] == b"\x89PNG" for k in ("residuals", "geometry"))
    assert main(["calibrate", "check", str(calib), str(check_dir), "--json", "--no-progress"]) == 0
    check = json.loads(capsys.readouterr().out)
    cal = load_calibration(calib)
    assert cal.data.residuals["rms_px"] <= 0.15
    assert check["rms_px"] <= 0.15 and check["views"] == 54
    assert cal.data.source["mirror_angles"].startswith("measured") and cal.data.source["frames_per_view"] == 4
    rig = Rig.from_file(None)
    with rig:
        true = rig.context.shared["sim.twin"].galvo_camera("search")
        limits = rig.role("search_galvo").limits_deg
    rays = rays_report(cal.galvo, true, limits, n_cmd=9)
    # Over the whole mirror range, in the zero-command view's frame. With the position sensor's angles at
    # mid-exposure the galvo wobble is gone (commanded angles gave 0.04-0.11 deg max here); this short
    # capture (108 views, kept small for CI) is then limited by corner noise: measured max 0.027 deg,
    # mean 0.0070 deg (fit 0.075 px, check 0.076 px).
    # The 0.01 deg acceptance needs the default 6x5 plan (docs/calibration.md, measured there).
    assert rays["max_deg"] < 0.04 and rays["mean_deg"] < 0.012, rays
    assert np.isfinite(cal.data.uncertainty["mirror1.gain"])
