"""A laser calibration played on the twin: boards placed by the simulator, stripes rendered, model fitted.

The simulator plays the operator: it places a flat board (known pose, as a
checkerboard's solvePnP would give) at three depths and tilts in several camera
views, sweeps the laser across each board, extracts the stripes and fits the
dynamic laser model starting from the design (``nominal_laser``), then writes
the laser calibration file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from foveate.calibration.galvo_geometry import GalvoCamera
from foveate.calibration.light_section.laser_calibration import StripeObservation, calibrate_laser
from foveate.calibration.light_section.laser_file import save_laser_calibration
from foveate.calibration.light_section.laser_model import DynamicLaser, nominal_laser
from foveate.hardware.sim.light_section.capture import board_pose_on_ray, capture_board_stripes
from foveate.hardware.sim.light_section.scene import LightSectionScene, with_optics
from foveate.system.light_section.scan import laser_commands_through
from foveate.system.light_section.stripe import StripeParams, extract_stripe
from foveate.system.light_section.triangulate import Triangulator

#: Camera views (mechanical degrees), board depths (mm) and tilts (deg about the board's x, y axes).
CAL_VIEWS = ((-4.5, -5.0), (4.5, 5.0), (0.0, 0.0), (-4.5, 5.0), (4.5, -5.0))
CAL_BOARDS = ((1650.0, (10.0, 0.0)), (1950.0, (0.0, -15.0)), (2250.0, (-10.0, 10.0)))


def _extract(image: np.ndarray, method: str) -> np.ndarray:
    best = None
    for axis in ("rows", "cols"):
        uv, _ = extract_stripe(image, StripeParams(method=method, axis=axis)).uv()
        if best is None or uv.shape[0] > best.shape[0]:
            best = uv
    return best


def simulated_laser_observations(scene: LightSectionScene, camera: GalvoCamera, init: DynamicLaser,
                                 laser_steps: int = 9, laser_span_deg: float = 2.0, method: str = "centroid",
                                 views=CAL_VIEWS, boards=CAL_BOARDS, progress: bool = False,
                                 seed: int = 0, true_laser: DynamicLaser | None = None) -> list[StripeObservation]:
    """Stripe observations of boards of known pose (see the module docstring).

    ``true_laser`` is the sheet as a function of the *command* (default: the scene's laser
    optics); on a rig pass ``scene.true_laser_model(twin)`` so the laser galvo's own gain and
    offset errors are in the captures, as they are in the scan.
    """
    if true_laser is not None:
        scene = with_optics(scene, replace(scene.optics, model=true_laser))
    tri = Triangulator(camera, init)
    obs = []
    total = len(views) * len(boards)
    bar = tqdm(total=total, desc="laser calibration captures", unit="board", disable=not progress, leave=False)
    k = 0
    for cd in views:
        o, d = camera.line_of_sight(*cd)
        poses = [board_pose_on_ray(o, d, (z - o[2]) / d[2], tilt) for z, tilt in boards]
        # One set of commands per view, through the middle board: every command lights every board,
        # so each command's sheet is seen at several depths (a plane, not just a line).
        a_c = laser_commands_through(tri, poses[len(poses) // 2][:3, 3][None], (-20.0, 20.0))[0]
        if not np.isfinite(a_c):
            bar.update(len(poses))
            continue
        cmds = a_c + np.linspace(-laser_span_deg, laser_span_deg, laser_steps)
        for T in poses:
            for c in capture_board_stripes(camera, scene, cd, T, f"board_{k}", cmds, seed=seed + k):
                obs.append(StripeObservation(c.laser_deg, c.camera_deg, _extract(c.image, method), c.board_T, c.pose))
            k += 1
            bar.update(1)
    bar.close()
    return obs


def simulated_laser_calibration(scene: LightSectionScene, camera: GalvoCamera, out: str | Path,
                                init: DynamicLaser | None = None, progress: bool = False,
                                true_laser: DynamicLaser | None = None) -> tuple[DynamicLaser, dict]:
    """Capture, fit and write a laser calibration; returns the model and the fit statistics."""
    init = init or nominal_laser()
    obs = simulated_laser_observations(scene, camera, init, progress=progress, true_laser=true_laser)
    cal = calibrate_laser(camera, obs, init)
    stats = cal.fit.stats()
    save_laser_calibration(out, cal.fit.model, residuals={**stats, "per_angle": cal.fit.per_angle,
                                                           "planes": cal.planes},
                           frame="rig frame of the simulated light-section module (mm)",
                           source={"simulated": True, "observations": len(obs),
                                   "boards": len({o.pose for o in obs}), "init": "nominal_laser()"},
                           notes=["boards placed by the twin at known poses; stripes rendered with speckle, "
                                  "read noise, DAC quantisation and 15 urad mirror repeatability"])
    return cal.fit.model, stats
