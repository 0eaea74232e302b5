"""Planning a galvo capture: where to put the board and which commands to take.

A good galvo capture spreads board placements over the whole mirror range
and, at each placement, takes a small grid of commands around the one that
centres the board, stepping each axis alone (that is what the axis
initialisation needs). The same plan drives a live rig (the user is asked to
put the board where the camera looks) and the twin (the board is placed
automatically from the true geometry, playing the operator).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from foveate.calibration.board import BoardSpec
from foveate.calibration.galvo_fit import View
from foveate.calibration.galvo_geometry import GalvoCamera, PinholeCamera, rotate_about, unit


@dataclass(frozen=True)
class Placement:
    """One board placement: its name, the centring command and the commands to capture."""

    name: str
    centre_deg: tuple[float, float]
    commands: tuple[tuple[float, float], ...]
    tilt_deg: tuple[float, float] = (0.0, 0.0)
    distance_mm: float = 1000.0


def hfov_deg(camera: PinholeCamera) -> float:
    return float(np.degrees(2 * np.arctan(camera.width / 2 / camera.K[0, 0])))


def board_for_view(camera: PinholeCamera, distance_mm: float, fill: float = 0.35, cols: int = 8, rows: int = 6) -> BoardSpec:
    """A board whose printed width covers ``fill`` of the view at ``distance_mm`` (square size rounded to 0.1 mm)."""
    view_w = 2 * distance_mm * camera.width / 2 / camera.K[0, 0]
    square = max(0.1, round(fill * view_w / (cols + 1), 1))
    return BoardSpec(cols=cols, rows=rows, square_mm=square)


def plan_galvo_capture(limits_deg, camera: PinholeCamera, grid: tuple[int, int] = (6, 5), local: int = 3,
                       step_deg: float | None = None, distance_mm: float = 1000.0, distances_mm=None,
                       tilt_deg: float = 20.0, margin_frac: float = 0.08, seed: int = 0,
                       gain_guess: float = 1.0) -> list[Placement]:
    """Placements on a ``grid`` over the mirror limits, each with a ``local`` x ``local`` command grid.

    ``step_deg`` (mechanical) defaults to what keeps a board a third of the
    view wide in view (a step turns the view by about ``2 * gain * step``):
    the gains are measured from these local steps, so they should be as
    large as the view allows. Tilts alternate
    in sign and size so the board is seen obliquely (needed for intrinsics);
    ``distances_mm`` cycles through the placements when given.
    """
    (x0, x1), (y0, y1) = limits_deg
    if step_deg is None:
        step_deg = 0.3 * hfov_deg(camera) / (2 * gain_guess) / max(1, (local - 1) / 2)
    half = step_deg * (local - 1) / 2
    mx, my = margin_frac * (x1 - x0) + half, margin_frac * (y1 - y0) + half
    xs = np.linspace(x0 + mx, x1 - mx, grid[0]) if grid[0] > 1 else np.array([(x0 + x1) / 2])
    ys = np.linspace(y0 + my, y1 - my, grid[1]) if grid[1] > 1 else np.array([(y0 + y1) / 2])
    rng = np.random.default_rng(seed)
    offs = (np.arange(local) - (local - 1) / 2) * step_deg
    out = []
    for k, (cy, cx) in enumerate(itertools.product(ys, xs)):
        tilt = tuple(float(v) for v in rng.uniform(-tilt_deg, tilt_deg, 2))
        dist = float(distances_mm[k % len(distances_mm)]) if distances_mm else float(distance_mm)
        cmds = tuple((float(cx + a), float(cy + b)) for b in offs for a in offs)
        out.append(Placement(f"p{k:02d}", (float(cx), float(cy)), cmds, tilt, dist))
    return out


def board_pose_facing(gcam: GalvoCamera, command_deg: tuple[float, float], board: BoardSpec, distance_mm: float,
                      tilt_deg: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """4x4 board -> world pose that centres the board in the view at ``command_deg``, ``distance_mm`` away.

    The board's axes follow the virtual camera's (x right, y down), tilted by
    ``tilt_deg`` about the board's own x and y axes through its centre.
    """
    V = gcam.virtual_extrinsics(*command_deg)
    R_vw = V[:3, :3]
    origin, d = gcam.line_of_sight(*command_deg)
    centre = origin + distance_mm * d
    R = R_vw.T.copy()  # columns: virtual camera axes in the world
    for axis_idx, ang in ((0, tilt_deg[0]), (1, tilt_deg[1])):
        R = rotate_about(R[:, axis_idx], np.deg2rad(ang), R.T).T
    R = np.stack([unit(R[:, 0]), unit(R[:, 1]), unit(np.cross(R[:, 0], R[:, 1]))], axis=1)
    c_board = np.array([(board.cols - 1) / 2 * board.square_mm, (board.rows - 1) / 2 * board.square_mm, 0.0])
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = centre - R @ c_board
    return T


def simulate_views(gcam: GalvoCamera, board: BoardSpec, plan: list[Placement], noise_px: float = 0.0,
                   seed: int = 0, margin_px: float = 2.0) -> tuple[list[View], dict[str, np.ndarray]]:
    """Corner observations a capture following ``plan`` would give (views whose board leaves the image are dropped).

    Returns the views and the true board poses (board -> world). For tests,
    benchmarks and for checking a plan against a nominal model before a capture.
    """
    rng = np.random.default_rng(seed)
    obj = board.object_points()
    cam = gcam.camera
    views, poses = [], {}
    for pl in plan:
        T = board_pose_facing(gcam, pl.centre_deg, board, pl.distance_mm, pl.tilt_deg)
        poses[pl.name] = T
        X = obj @ T[:3, :3].T + T[:3, 3]
        for tx, ty in pl.commands:
            uv = gcam.project(X, tx, ty)
            inside = (uv[:, 0] > margin_px) & (uv[:, 0] < cam.width - 1 - margin_px)
            inside &= (uv[:, 1] > margin_px) & (uv[:, 1] < cam.height - 1 - margin_px)
            if not inside.all():
                continue
            if noise_px > 0:
                uv = uv + rng.normal(0.0, noise_px, uv.shape)
            views.append(View(f"{pl.name}@{tx:+.3f},{ty:+.3f}", pl.name, tx, ty, uv, obj))
    return views, poses


def write_rendered_capture(out, gcam: GalvoCamera, board: BoardSpec, plan: list[Placement], camera_yaml: bool = True,
                           noise_std: float = 2.0, seed: int = 0, supersample: int = 3) -> int:
    """Render a capture directory without any rig (anti-aliased board on white, grey noise); returns the image count.

    For tests and demos of the fitting code on images; views whose board leaves the image are left out.
    """
    from foveate.calibration.board import BoardRenderer
    from foveate.calibration.capture_set import CaptureWriter

    renderer = BoardRenderer(gcam.camera, supersample)
    rng = np.random.default_rng(seed)
    views, poses = simulate_views(gcam, board, plan, 0.0, seed, margin_px=board_margin_px(gcam, board, plan))
    with CaptureWriter(out, board, gcam.camera if camera_yaml else None) as w:
        for v in views:
            T = gcam.virtual_extrinsics(v.theta_x_deg, v.theta_y_deg) @ poses[v.pose]
            w.add(renderer.render(board, T, noise_std, rng), v.pose, v.theta_x_deg, v.theta_y_deg)
        return w.count


def board_margin_px(gcam: GalvoCamera, board: BoardSpec, plan: list[Placement]) -> float:
    """Pixels of one square at the plan's nearest distance: the outer squares must stay in the image too."""
    d = min(p.distance_mm for p in plan)
    return 1.2 * board.square_mm / d * gcam.camera.K[0, 0]
