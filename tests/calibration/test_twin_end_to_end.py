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
    # 12 placements x 9 commands to fit, 6 other placements to check (~1 s per image: the twin renders the board)
    assert main(["calibrate", "capture", "--out", str(fit_dir), "--grid", "4x3", "--no-progress"]) == 0
    assert main(["calibrate", "capture", "--out", str(check_dir), "--grid", "3x2", "--seed", "7", "--no-progress"]) == 0
    assert main(["calibrate", "galvo", str(fit_dir), "--out", str(calib), "--json", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["calibrate", "check", str(calib), str(check_dir), "--json", "--no-progress"]) == 0
    check = json.loads(capsys.readouterr().out)
    cal = load_calibration(calib)
    assert cal.data.residuals["rms_px"] <= 0.3
    assert check["rms_px"] <= 0.3 and check["views"] == 54
    rig = Rig.from_file(None)
    with rig:
        true = rig.context.shared["sim.twin"].galvo_camera("search")
        limits = rig.role("search_galvo").limits_deg
    rays = rays_report(cal.galvo, true, limits, n_cmd=9)
    # Over the whole mirror range, in the zero-command view's frame. This short capture (108 views, kept
    # small for CI) is limited by the twin galvo's position wobble (~0.17 search px per view, not averaged
    # by the corners of a view): measured max 0.08-0.11 deg, mean 0.03-0.04 deg. The 0.01 deg acceptance
    # needs the default 6x5 plan (docs/calibration.md) and is asserted on corner data in test_galvo_fit.
    assert rays["max_deg"] < 0.2 and rays["mean_deg"] < 0.06, rays
    assert np.isfinite(cal.data.uncertainty["mirror1.gain"])
