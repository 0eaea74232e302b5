"""Taking captures on a rig: the same code drives a live rig and the twin.

On a live rig the user moves the board between placements (``ask`` prompts
and waits); on a simulated rig whose twin can place boards
(``rig.context.shared["sim.twin"]`` with ``set_board``), the board is placed
automatically where the camera looks, playing the operator. Nothing here
imports the simulator: the twin is used duck-typed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from foveate.calibration.board import BoardSpec, detect_corners
from foveate.calibration.capture_plan import Placement, board_pose_facing, hfov_deg, plan_galvo_capture
from foveate.calibration.capture_set import CaptureWriter
from foveate.calibration.errors import CalibrationError
from foveate.calibration.galvo_geometry import GalvoCamera, PinholeCamera

log = logging.getLogger(__name__)

#: ``ask(message) -> answer``; answers: "" (go on), "s" (skip this placement), "q" (stop).
Ask = Callable[[str], str]


def twin_of(rig) -> Any | None:
    """The rig's digital twin when it can place boards, else None (a live rig)."""
    twin = rig.context.shared.get("sim.twin")
    return twin if twin is not None and hasattr(twin, "set_board") else None


@dataclass
class CaptureSummary:
    out: Path
    images: int
    placements: int
    skipped: list[str]


def capture_galvo(rig, out: str | Path, board: BoardSpec | None = None, camera_role: str = "search_camera",
                  galvo_role: str = "search_galvo", intrinsics: PinholeCamera | None = None,
                  grid: tuple[int, int] = (6, 5), local: int = 3, step_deg: float | None = None,
                  distances_mm=(800.0, 1000.0, 1300.0), tilt_deg: float = 25.0, seed: int = 0,
                  ask: Ask | None = None, progress: bool = True, settle_timeout_s: float = 0.05,
                  dwell_s: float = 0.005, frames: int = 4) -> CaptureSummary:
    """Drive the galvo through a capture plan and save every image (see ``capture_plan``).

    ``rig`` must be open. ``intrinsics`` (known from ``foveate calibrate
    intrinsics``) are written as ``camera.yaml``; on the twin without them,
    the camera's true intrinsics are written and the capture says so.

    At each command ``frames`` frames are taken, each after its own random
    dwell, and saved as separate rows (the fit averages them). When the galvo
    records its position (``Galvo.measured_at``), each row also gets the
    measured angles at the frame's mid-exposure (``Frame.t_ns``): the fit then
    uses where the mirrors really were, wobble included, instead of the command.
    """
    if frames < 1:
        raise CalibrationError(f"frames per command must be >= 1, got {frames}")
    cam_dev = rig.role(camera_role)
    galvo = rig.role(galvo_role)
    twin = twin_of(rig)
    true_g: GalvoCamera | None = twin.galvo_camera(cam_dev.name) if twin is not None else None
    meta: dict[str, Any] = {"rig": rig.config.name, "camera": cam_dev.name, "galvo": galvo.name,
                            "limits_deg": [list(a) for a in galvo.limits_deg], "mode": "twin" if twin else "live"}
    if intrinsics is None and true_g is not None:
        intrinsics = true_g.camera
        meta["intrinsics"] = "the twin's true camera model (simulation: stands for a prior intrinsics calibration)"
    elif intrinsics is not None:
        meta["intrinsics"] = "given with --intrinsics"
    nominal = intrinsics
    if nominal is None:
        hfov = getattr(cam_dev, "hfov_deg", None)
        if hfov is None:
            raise CalibrationError(
                f"{cam_dev.name}: give the camera's intrinsics (--intrinsics FILE from 'foveate calibrate intrinsics') "
                "so the capture can be planned"
            )
        nominal = PinholeCamera.from_fov(cam_dev.width, cam_dev.height, float(hfov))
    gain_guess = 1.0
    if board is None:
        from foveate.calibration.capture_plan import board_for_view

        board = board_for_view(nominal, float(np.min(distances_mm)))
    plan = plan_galvo_capture(galvo.limits_deg, nominal, grid=grid, local=local, step_deg=step_deg,
                              distances_mm=list(distances_mm), tilt_deg=tilt_deg, seed=seed, gain_guess=gain_guess)
    meta["plan"] = {"grid": list(grid), "local": local, "step_deg": float(_step(plan)), "hfov_deg": hfov_deg(nominal),
                    "distances_mm": [float(d) for d in distances_mm], "tilt_deg": tilt_deg}
    measured = galvo.measured_at(rig.clock.now_ns()) is not None
    meta["frames_per_command"] = int(frames)
    meta["mirror_angles"] = ("measured: the galvo's position record at each frame's mid-exposure" if measured else
                             "commanded: the galvo keeps no position record (its wobble stays in the data)")
    if not measured:
        log.warning("%s keeps no position record: captures.csv gets the commanded angles only", galvo.name)
    skipped: list[str] = []
    order_rng = np.random.default_rng(seed + 1)
    total = sum(len(p.commands) for p in plan) * frames
    with CaptureWriter(out, board, intrinsics, meta, measured=measured) as writer, \
            tqdm(total=total, desc="capturing", unit="img", disable=not progress, leave=False) as bar:
        try:
            for pl in plan:
                if not _place_board(pl, board, galvo, cam_dev, twin, true_g, ask, settle_timeout_s):
                    skipped.append(pl.name)
                    bar.update(len(pl.commands) * frames)
                    continue
                for i in order_rng.permutation(len(pl.commands)):
                    tx, ty = pl.commands[i]
                    galvo.move_to(tx, ty)
                    galvo.wait_settled(settle_timeout_s)
                    for _ in range(frames):
                        rig.clock.sleep_s(dwell_s * (1.0 + order_rng.uniform()))
                        frame = cam_dev.read()
                        writer.add(frame.image, pl.name, tx, ty, galvo.measured_at(frame.t_ns) if measured else None)
                        bar.update(1)
        except _Stop:
            log.info("capture stopped by the user after %d images", writer.count)
        finally:
            if twin is not None:
                twin.set_board(None, board.cols, board.rows, board.square_mm)
        count = writer.count
    return CaptureSummary(Path(out), count, len(plan) - len(skipped), skipped)


class _Stop(Exception):
    pass


def _step(plan: list[Placement]) -> float:
    xs = sorted({c[0] for c in plan[0].commands})
    return xs[1] - xs[0] if len(xs) > 1 else 0.0


def _place_board(pl: Placement, board: BoardSpec, galvo, cam_dev, twin, true_g, ask: Ask | None,
                 settle_timeout_s: float) -> bool:
    """Put the board in view for placement ``pl``; False to skip it."""
    if twin is not None:
        T = board_pose_facing(true_g, pl.centre_deg, board, pl.distance_mm, pl.tilt_deg)
        twin.set_board(T, board.cols, board.rows, board.square_mm)
        return True
    if ask is None:
        raise CalibrationError("a live rig needs an operator to move the board (run the command in a terminal)")
    galvo.move_to(*pl.centre_deg)
    galvo.wait_settled(settle_timeout_s)
    note = ""
    while True:
        answer = ask(
            f"{note}[{pl.name}] The camera now looks where commands {pl.centre_deg[0]:+.2f}, {pl.centre_deg[1]:+.2f} deg point. "
            f"Put the board there, about {pl.distance_mm:.0f} mm away, tilted by roughly {pl.tilt_deg[0]:+.0f}/"
            f"{pl.tilt_deg[1]:+.0f} deg, filling about a third of the view; then press Enter (s = skip, q = stop): "
        ).strip().lower()
        if answer == "q":
            raise _Stop
        if answer == "s":
            return False
        frame = cam_dev.read()
        if detect_corners(frame.image, board) is not None:
            return True
        note = f"board ({board.cols}x{board.rows} inner corners) not found in the view; adjust it. "
