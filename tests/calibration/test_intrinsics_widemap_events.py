"""Intrinsics with coverage advice, the wide-to-galvo map and event/frame alignment on synthetic data."""

import cv2
import numpy as np
import pytest

from foveate.calibration.board import BoardRenderer, BoardSpec, detect_corners
from foveate.calibration.capture_set import CaptureWriter
from foveate.calibration.errors import CalibrationError
from foveate.calibration.event_alignment import EventFrameMap, blink_frame, calibrate_alignment
from foveate.calibration.galvo_geometry import PinholeCamera
from foveate.calibration.intrinsics import calibrate_intrinsics, calibrate_intrinsics_dir, intrinsics_board_poses
from foveate.calibration.wide_map import Poly2D, WideMap, fit_wide_map, load_search_geometry, register_search_in_wide, save_wide_map
from foveate.system.types import EventPacket, make_events
from foveate.tools.cli import main


@pytest.fixture(scope="module")
def wide_cam():
    return PinholeCamera.from_fov(320, 240, 60.0, dist=[-0.12, 0.03, 0.0005, -0.0003, 0.0])


def _views(cam, board, n, seed=0, noise=0.0):
    poses = intrinsics_board_poses(cam, board, n, 1200.0, seed)
    obj = board.object_points()
    rng = np.random.default_rng(seed)
    out = []
    for T in poses:
        uv = cam.project_cam(obj @ T[:3, :3].T + T[:3, 3])
        out.append(uv + rng.normal(0, noise, uv.shape))
    return poses, out


def test_intrinsics_from_rendered_images(tmp_path, wide_cam, capsys):
    board = BoardSpec(9, 6, 70.0)
    poses, _ = _views(wide_cam, board, 14)
    r = BoardRenderer(wide_cam, 3)
    rng = np.random.default_rng(0)
    with CaptureWriter(tmp_path / "c", board) as w:
        for k, T in enumerate(poses):
            w.add(r.render(board, T, 2.0, rng), f"v{k}", 0.0, 0.0)
    out = tmp_path / "cam.yaml"
    assert main(["calibrate", "intrinsics", str(tmp_path / "c"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "RMS" in text and "worst views" in text
    res = calibrate_intrinsics_dir(tmp_path / "c", None)
    assert res.rms_px < 0.2
    assert res.camera.K[0, 0] == pytest.approx(wide_cam.K[0, 0], rel=5e-3)
    # rays through the image agree up to one small rotation (principal point vs. board poses)
    pix = np.array([(u, v) for u in np.linspace(40, 280, 5) for v in np.linspace(30, 210, 5)], float)  # where corners were seen
    a, b = res.camera.normalised_rays(pix), wide_cam.normalised_rays(pix)
    U, _, Wt = np.linalg.svd(b.T @ a)
    Rb = U @ np.diag([1, 1, np.linalg.det(U @ Wt)]) @ Wt
    assert np.degrees(np.arccos(np.clip(np.sum((a @ Rb.T) * b, 1), -1, 1))).max() < 0.05
    # the result is usable as camera.yaml of a galvo capture
    from foveate.calibration.capture_set import load_camera

    assert load_camera(out).K[0, 0] == pytest.approx(res.camera.K[0, 0])


def test_intrinsics_coverage_guidance(wide_cam):
    board = BoardSpec(9, 6, 40.0)
    _, uv = _views(wide_cam, board, 12, noise=0.1)
    # keep only views in the left half of the image: the right side is never covered
    left = [u for u in uv if u[:, 0].max() < 160]
    if len(left) < 5:
        left = [u * [0.5, 1.0] for u in uv]  # squeeze corners to the left half (still a valid test of the advice)
    res = calibrate_intrinsics([f"v{i}" for i in range(len(left))], left, board, (320, 240))
    assert res.coverage["cells_covered"] < res.coverage["cells_total"]
    assert any("right" in g for g in res.guidance)
    with pytest.raises(CalibrationError, match="too few views"):
        calibrate_intrinsics(["a"], uv[:1], board, (320, 240))


def test_poly2d_jacobian_and_wide_map_inverse():
    rng = np.random.default_rng(0)
    cmd = rng.uniform([-15, -11], [15, 11], (200, 2))
    true = lambda c: np.stack([320 - 19 * c[:, 0] + 0.05 * c[:, 0] ** 2 + 0.3 * c[:, 1],
                               184 - 18.5 * c[:, 1] + 0.02 * c[:, 0] * c[:, 1]], 1)
    fwd = Poly2D.fit(cmd, true(cmd), 3, [0, 0], [15, 11])
    inv = Poly2D.fit(true(cmd), cmd, 3)
    aff = Poly2D.fit(cmd, np.tile([0.1, 0.0, 0.0, 0.1], (200, 1)), 2, [0, 0], [15, 11])
    wm = WideMap(fwd, inv, aff, ((-15, 15), (-11, 11)), (256, 256), (640, 480))
    grid = np.array([(x, y) for x in np.linspace(-15, 15, 7) for y in np.linspace(-11, 11, 5)])
    assert np.allclose(wm.command_to_wide_pixel(grid), true(grid), atol=1e-8)
    assert np.allclose(wm.wide_pixel_to_command(wm.command_to_wide_pixel(grid)), grid, atol=1e-9)
    h = 1e-5
    J = fwd.jacobian(grid)
    Jn = np.stack([(fwd(grid + [h, 0]) - fwd(grid - [h, 0])) / (2 * h), (fwd(grid + [0, h]) - fwd(grid - [0, h])) / (2 * h)], 2)
    assert np.allclose(J, Jn, atol=1e-6)
    # search Jacobian: d(cmd)/d(search px) = (d wide/d cmd)^-1 (d wide/d search px)
    Js = wm.search_jacobian(grid[:1])[0]
    assert np.allclose(J[0] @ Js, [[0.1, 0], [0, 0.1]], atol=1e-9)


def _textured(h, w, seed):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h // 4, w // 4)).astype(np.float32), (0, 0), 1.0)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)


def test_registration_finds_a_zoomed_view():
    wide = _textured(480, 640, 1)
    # a search view 10x finer than the wide image, centred at (300.3, 200.7), rotated 2 deg
    c, scale, ang = np.array([300.3, 200.7]), 0.1, np.radians(2.0)
    A = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])  # wide px per search px
    M = np.c_[A, c - A @ np.array([127.5, 127.5])]
    search = cv2.warpAffine(wide, M, (256, 256), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    reg = register_search_in_wide(search.astype(np.uint8), wide.astype(np.uint8), c + [6.0, -5.0], scale, window_px=15)
    assert reg is not None and reg.score > 0.9
    assert np.allclose(reg.centre_wide, c, atol=0.15)
    assert np.allclose(reg.A, A, atol=0.01)
    # a featureless view is refused rather than guessed
    assert register_search_in_wide(np.full((256, 256), 120, np.uint8), wide.astype(np.uint8), c, scale) is None


def test_fit_wide_map_residuals_in_search_pixels(tmp_path):
    from foveate.calibration.wide_map import Registration

    rng = np.random.default_rng(2)
    cmds = np.array([(x, y) for y in np.linspace(-10, 10, 9) for x in np.linspace(-14, 14, 13)])
    A = np.array([[0.1, 0.0], [0.0, 0.1]])
    true = np.stack([320 - 19 * cmds[:, 0] + 0.04 * cmds[:, 0] ** 2, 184 - 18.5 * cmds[:, 1]], 1)
    regs = [Registration(t + rng.normal(0, 0.02, 2), A, 0.95) for t in true]
    regs[5] = Registration(true[5] + [3.0, 0.0], A, 0.95)  # a wrong registration: dropped as an outlier
    regs[7] = None  # no texture
    fit = fit_wide_map(cmds, regs, ((-15, 15), (-11, 11)), (256, 256), (640, 480))
    assert fit.rms_search_px < 0.5  # 0.02 wide px noise = 0.2 search px per axis
    assert tuple(cmds[5]) in fit.failed and tuple(cmds[7]) in fit.failed
    out = save_wide_map(fit, tmp_path / "wide.yaml", {"test": True})
    geo = load_search_geometry(out)
    assert np.allclose(geo.command_to_wide(cmds[:3]), fit.wide_map.command_to_wide_pixel(cmds[:3]))
    assert geo.search_jacobian(cmds[:2]).shape == (2, 2, 2)
    with pytest.raises(CalibrationError, match="could be registered"):
        fit_wide_map(cmds[:10], regs[:10], ((-15, 15), (-11, 11)), (256, 256), (640, 480))


def test_event_frame_map_round_trip_and_alignment(wide_cam):
    ev_cam = PinholeCamera.from_fov(320, 240, 64.0, dist=[-0.1, 0.02, 0, 0, 0])
    fr_cam = PinholeCamera.from_fov(640, 480, 64.0, dist=[-0.1, 0.02, 0, 0, 0])
    rv = np.array([0.004, -0.01, 0.002])
    R = cv2.Rodrigues(rv)[0]
    t = np.array([40.0, -5.0, 2.0])
    m = EventFrameMap(ev_cam, fr_cam, R, t)
    uv = np.array([[10.0, 20.0], [160.0, 120.0], [300.0, 230.0]])
    assert np.allclose(m.frame_to_event(m.event_to_frame(uv, 3000.0), 3000.0 + 0 * uv[:, 0]), uv, atol=0.05)
    # synthetic corners of one board seen by both -> extrinsics recovered by stereoCalibrate
    board = BoardSpec(9, 6, 60.0)
    poses = intrinsics_board_poses(ev_cam, board, 12, 2500.0, 3)
    obj = board.object_points()
    rng = np.random.default_rng(0)
    ev, fr = [], []
    for T in poses:
        X = obj @ T[:3, :3].T + T[:3, 3]
        ev.append(ev_cam.project_cam(X) + rng.normal(0, 0.05, (len(X), 2)))
        fr.append(fr_cam.project_cam(X @ R.T + t) + rng.normal(0, 0.05, (len(X), 2)))
    res = calibrate_alignment(ev, fr, board, (320, 240), fr_cam)
    assert res.stereo_rms_px < 0.2
    assert np.allclose(res.map.R_fe, R, atol=5e-3)
    assert np.allclose(res.map.t_fe_mm, t, atol=30.0)  # depth along the baseline trades against the focal length
    got = res.map.event_to_frame(uv, 3000.0)
    assert np.abs(got - m.event_to_frame(uv, 3000.0)).max() < 1.0


def test_blink_frame_shows_the_board():
    board = BoardSpec(5, 4, 10.0)
    cam = PinholeCamera.from_fov(160, 120, 40.0)
    T = np.eye(4)
    T[:3, 3] = [-25, -18, 200]
    img = BoardRenderer(cam, 2).render(board, T)
    # events of the board appearing over a mid-grey background: log contrast / 0.2 events per pixel
    d = np.log(img.astype(float) + 1) - np.log(128.0)
    n = np.floor(np.abs(d) / 0.2).astype(int)
    ys, xs = np.nonzero(n)
    reps = n[ys, xs]
    ev = make_events(np.repeat(xs, reps), np.repeat(ys, reps), np.zeros(reps.sum(), int), np.repeat((d[ys, xs] > 0).astype(int), reps))
    on = EventPacket(ev, (160, 120), 0, 1)
    off_ev = ev.copy()
    off_ev["p"] = 1 - off_ev["p"]
    off_ev["t"] = 1
    off = EventPacket(off_ev, (160, 120), 1, 2)
    frame = blink_frame(on, off)
    assert detect_corners(frame, board) is not None
