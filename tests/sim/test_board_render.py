"""The twin's checkerboard: only pixels crossed by an edge are supersampled, and the image is the same as sampling all."""

import numpy as np

from foveate.calibration.capture_plan import board_for_view, board_pose_facing
from foveate.calibration.galvo_geometry import PinholeCamera, nominal_xy_galvo_camera
from foveate.hardware.sim.board import Board, _intersect, _shade, composite_board
from foveate.hardware.sim.scene import OBJECT


def _supersample_all(board: Board, H: int, W: int, rays, ss: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: every pixel sampled ss x ss (the coverage and the mean board shade of the samples that hit)."""
    off = (np.arange(ss) + 0.5) / ss - 0.5
    ou, ov = np.meshgrid(off, off)
    vv, uu = np.mgrid[0:H, 0:W]
    uv = np.stack([uu.ravel()[:, None] + ou.ravel(), vv.ravel()[:, None] + ov.ravel()], axis=-1).reshape(-1, 2)
    o, d = rays(uv)
    sh, hit = _shade(board, *_intersect(board, o, d))
    sh, hit = sh.reshape(H * W, -1), hit.reshape(H * W, -1)
    cover = hit.mean(axis=1)
    shade = np.where(cover > 0, (sh * hit).sum(axis=1) / np.maximum(hit.sum(axis=1), 1), 0.0)
    return cover.reshape(H, W), shade.reshape(H, W)


def test_edge_only_supersampling_equals_full_supersampling():
    cam = PinholeCamera.from_fov(96, 80, 2.6, dist=[-0.05, 0.01, 0.001, -0.0005, 0.0])
    g = nominal_xy_galvo_camera(cam)
    spec = board_for_view(cam, 800.0)
    T = board_pose_facing(g, (0.4, -0.3), spec, 450.0, (20.0, -15.0))
    board = Board(T, spec.cols, spec.rows, spec.square_mm)
    calls = []

    def rays(uv):
        calls.append(len(uv))
        return g.pixel_rays(uv, 0.45, -0.25)

    ss = 4
    inten = np.full((80, 96), 0.5, np.float32)
    labels = np.zeros((80, 96), np.uint8)
    cover = composite_board(board, inten, labels, rays, ss=ss)
    ref_cover, ref_shade = _supersample_all(board, 80, 96, rays, ss)
    assert np.allclose(cover, ref_cover, atol=1e-6)
    ref = ref_cover * ref_shade + (1 - ref_cover) * 0.5
    assert np.abs(inten - ref).max() < 1e-5
    assert np.array_equal(labels == OBJECT, ref_cover >= 0.5)
    # the board covers much of the image but not all of it, and fewer than half of its pixels are sampled
    assert 0.2 < (ref_cover > 0).mean() < 1.0
    sampled = calls[1] // ss**2
    assert sampled < 0.5 * (ref_cover > 0).sum(), (sampled, (ref_cover > 0).sum())
