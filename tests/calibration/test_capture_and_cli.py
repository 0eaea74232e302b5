"""Capture directories, calibration files and the ``foveate calibrate`` commands on rendered images."""

import json
import shutil

import numpy as np
import pytest
import yaml

from foveate.calibration.board import BoardSpec, detect_corners
from foveate.calibration.calib_file import load_calibration
from foveate.calibration.capture_plan import board_for_view, plan_galvo_capture, write_rendered_capture
from foveate.calibration.capture_set import load_capture_dir
from foveate.calibration.errors import CalibrationError
from foveate.system.errors import ConfigError
from foveate.tools.cli import main

from .conftest import LIMITS


@pytest.fixture(scope="module")
def capture_dir(tmp_path_factory, true_galvo):
    out = tmp_path_factory.mktemp("cap") / "galvo"
    board = board_for_view(true_galvo.camera, 800.0)
    plan = plan_galvo_capture(LIMITS, true_galvo.camera, grid=(3, 2), distances_mm=[800, 1000], tilt_deg=20, seed=3)
    n = write_rendered_capture(out, true_galvo, board, plan, supersample=2, seed=1)
    assert n == 54
    return out


def _copy(src, tmp_path):
    dst = tmp_path / "c"
    shutil.copytree(src, dst)
    return dst


def test_rendered_corners_are_accurate(capture_dir, true_galvo):
    cs = load_capture_dir(capture_dir)
    row = cs.rows[0]
    uv = detect_corners(cs.read_image(row), cs.board)
    assert uv is not None and uv.shape == (cs.board.n_corners, 2)
    assert cs.camera is not None and cs.camera.width == 256


@pytest.fixture(scope="module")
def calibrated(capture_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("calib") / "calib.yaml"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["calibrate", "galvo", str(capture_dir), "--out", str(out), "--no-progress"]) == 0
    return out, buf.getvalue()


def test_calibrate_galvo_and_check_commands(capture_dir, calibrated, capsys):
    out, text = calibrated
    tmp_path = out.parent
    assert "not determined by the data" in text and "wrote" in text
    cal = load_calibration(out, expect_kind="galvo_camera")
    assert cal.data.residuals["rms_px"] < 0.5
    assert len(cal.data.residuals["per_view"]) == 54
    assert cal.data.source["captures_sha256"] and cal.data.created.endswith("Z")
    for suffix in ("_residuals.png", "_geometry.png"):
        assert (tmp_path / f"calib{suffix}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["calibrate", "check", str(out), str(capture_dir), "--json", "--no-progress"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) >= {"rms_px", "views"} and res["views"] == 54 and res["rms_px"] < 0.5


def test_missing_image_names_the_file(capture_dir, tmp_path, capsys):
    d = _copy(capture_dir, tmp_path)
    victim = sorted((d / "images").iterdir())[5]
    victim.unlink()
    with pytest.raises(CalibrationError, match=rf"captures.csv: line 7: image 'images/{victim.name}' not found"):
        load_capture_dir(d)
    assert main(["calibrate", "galvo", str(d), "--out", str(tmp_path / "x.yaml")]) == 2
    assert victim.name in capsys.readouterr().err


def test_board_not_found_names_the_file(capture_dir, tmp_path):
    d = _copy(capture_dir, tmp_path)
    victim = sorted((d / "images").iterdir())[2]
    import cv2

    cv2.imwrite(str(victim), np.full((256, 256), 128, np.uint8))
    with pytest.raises(CalibrationError, match=rf"{victim.name}: board \(8x6 inner corners\) not found"):
        from foveate.calibration.galvo_procedure import calibrate_galvo_dir

        calibrate_galvo_dir(d, tmp_path / "x.yaml")


def test_bad_csv_and_board_files(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    with pytest.raises(CalibrationError, match="captures.csv: not found"):
        load_capture_dir(d)
    (d / "captures.csv").write_text("image,pose,theta_x_deg\n")
    (d / "board.yaml").write_text("type: checkerboard\ncols: 8\nrows: 6\nsquare_mm: 5\n")
    with pytest.raises(CalibrationError, match="line 1: missing column.*theta_y_deg"):
        load_capture_dir(d)
    (d / "a.png").write_bytes(b"")
    (d / "captures.csv").write_text("image,pose,theta_x_deg,theta_y_deg\na.png,p0,one,0\n")
    with pytest.raises(CalibrationError, match="line 2: column theta_x_deg: expected a number"):
        load_capture_dir(d)
    (d / "board.yaml").write_text("type: checkerboard\ncols: 8\nrow: 6\nsquare_mm: 5\n")
    with pytest.raises(ConfigError, match=r"board.yaml: row: unknown key 'row' \(did you mean 'rows'"):
        load_capture_dir(d)
    (d / "board.yaml").write_text("type: checkerboard\ncols: 6\nrows: 6\nsquare_mm: 5\n")
    with pytest.raises(ConfigError, match="board.yaml: .*different counts"):
        load_capture_dir(d)
    (d / "board.yaml").write_text("type: checkerboard\ncols: 8\nrows: 6\nsquare_mm: 5\n")
    (d / "camera.yaml").write_text("fx: 100\nfy: 100\ncx: 1\ncy: 1\nwidth: 10\nheight: 10\ndist: [0, 0]\n")
    with pytest.raises(ConfigError, match="camera.yaml: dist: List should have at least 5 items"):
        load_capture_dir(d)


def test_calibration_file_validation(calibrated, tmp_path):
    out = calibrated[0]
    data = yaml.safe_load(out.read_text())
    assert data["schema"] == "foveate-calibration/1" and data["kind"] == "galvo_camera"
    g = load_calibration(out).galvo
    assert np.allclose(g.T_cw, np.eye(4))

    def broken(mutate, match):
        d = yaml.safe_load(out.read_text())
        mutate(d)
        p = tmp_path / "bad.yaml"
        p.write_text(yaml.safe_dump(d))
        with pytest.raises(ConfigError, match=match):
            load_calibration(p)

    broken(lambda d: d.update(schema="foveate-calibration/9"), r"bad.yaml: schema: unsupported version")
    broken(lambda d: d["mirror1"].pop("gain"), r"bad.yaml: mirror1.gain: required key is missing")
    broken(lambda d: d["mirror2"].update(axis_dir=[1, 1, 0]), r"bad.yaml: mirror2.axis_dir: .*unit vector")
    broken(lambda d: d["T_cw"][0].__setitem__(0, 2.0), r"bad.yaml: T_cw: .*rigid transform")
    broken(lambda d: d.update(kind="laser"), r"bad.yaml: kind: expected one of")
    with pytest.raises(ConfigError, match="expected 'camera', got 'galvo_camera'"):
        load_calibration(out, expect_kind="camera")


def test_calibrate_help_lists_steps(capsys):
    assert main(["calibrate"]) == 0
    out = capsys.readouterr().out
    for step in ("capture", "galvo", "check", "intrinsics", "wide-map", "events"):
        assert step in out


def test_board_spec_rules():
    with pytest.raises(CalibrationError):
        BoardSpec(2, 5, 1.0)
    b = BoardSpec(4, 3, 10.0)
    assert b.object_points()[5].tolist() == [10.0, 10.0, 0.0]


def _with_repeats(src, dst, offsets_deg, poses=("p00", "p01")):
    """Capture ``src``'s images of ``poses``, each listed once per offset: repeated frames with measured angles."""
    import csv

    shutil.copytree(src, dst)
    with (dst / "captures.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["pose"] in poses]
    with (dst / "captures.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "pose", "theta_x_deg", "theta_y_deg", "measured_x_deg", "measured_y_deg"])
        for r in rows:
            for k, off in enumerate(offsets_deg):
                name = r["image"] if k == 0 else r["image"].replace(".png", f"_f{k}.png")
                if k:
                    shutil.copy(dst / r["image"], dst / name)
                w.writerow([name, r["pose"], r["theta_x_deg"], r["theta_y_deg"],
                            float(r["theta_x_deg"]) + off, float(r["theta_y_deg"]) - off])
    return rows


def test_repeated_frames_are_averaged_with_their_measured_angles(capture_dir, tmp_path):
    from foveate.calibration.galvo_procedure import detect_views

    d = tmp_path / "rep"
    rows = _with_repeats(capture_dir, d, (0.001, 0.003))
    cs = load_capture_dir(d)
    assert len(cs.rows) == 2 * len(rows) == 36
    assert cs.rows[1].measured_deg == pytest.approx((float(rows[0]["theta_x_deg"]) + 0.003,
                                                     float(rows[0]["theta_y_deg"]) - 0.003))
    views = detect_views(cs).views
    assert len(views) == 18
    v = views[0]
    # the same image twice: the mean is that image's corners; the measured angles are the frames' mean
    assert v.name == rows[0]["image"] and np.allclose(v.uv, detect_corners(cs.read_image(cs.rows[0]), cs.board))
    assert v.measured_deg == pytest.approx((v.theta_x_deg + 0.002, v.theta_y_deg - 0.002))
    assert v.mirror_deg == v.measured_deg


def test_measured_columns_errors_name_the_line(tmp_path):
    d = tmp_path / "c"
    d.mkdir()
    (d / "board.yaml").write_text("type: checkerboard\ncols: 8\nrows: 6\nsquare_mm: 5\n")
    (d / "a.png").write_bytes(b"")
    (d / "captures.csv").write_text("image,pose,theta_x_deg,theta_y_deg,measured_x_deg\na.png,p0,0,0,0\n")
    with pytest.raises(CalibrationError, match="line 1: column measured_x_deg without measured_y_deg"):
        load_capture_dir(d)
    (d / "captures.csv").write_text("image,pose,theta_x_deg,theta_y_deg,measured_x_deg,measured_y_deg\na.png,p0,0,0,0,\n")
    with pytest.raises(CalibrationError, match="line 2: column measured_y_deg: expected a number"):
        load_capture_dir(d)


def test_image_size_mismatches_name_the_file(capture_dir, tmp_path, calibrated):
    import cv2

    from foveate.calibration.galvo_procedure import check_galvo_dir, detect_views

    d = _copy(capture_dir, tmp_path)
    victim = sorted((d / "images").iterdir())[3]
    cv2.imwrite(str(victim), np.full((200, 256), 128, np.uint8))
    with pytest.raises(CalibrationError, match=rf"{victim.name}: image is 256x200 but camera.yaml says 256x256"):
        detect_views(load_capture_dir(d))
    (d / "camera.yaml").unlink()
    with pytest.raises(CalibrationError, match=rf"{victim.name}: image is 256x200, earlier ones 256x256"):
        detect_views(load_capture_dir(d))
    small = tmp_path / "small"
    small.mkdir()
    (small / "board.yaml").write_text((capture_dir / "board.yaml").read_text())
    cv2.imwrite(str(small / "a.png"), np.full((100, 120), 128, np.uint8))
    (small / "captures.csv").write_text("image,pose,theta_x_deg,theta_y_deg\na.png,p0,0,0\n")
    with pytest.raises(CalibrationError, match=r"images are 120x100 but .*calib.yaml was made for 256x256"):
        check_galvo_dir(calibrated[0], small, allow_missing=True)


def test_capture_refuses_zero_frames():
    from foveate.calibration.capture import capture_galvo

    with pytest.raises(CalibrationError, match="frames per command must be >= 1, got 0"):
        capture_galvo(None, "unused", frames=0)
