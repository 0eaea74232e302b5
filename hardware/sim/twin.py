"""The shared state of a simulated rig: one scene, one clock, the sim devices, ground truth.

Every sim device of a rig finds the same ``Twin`` through ``twin_for(context)``
and registers itself in ``twin.devices`` by name, so the search camera finds
its galvo, the light-section scene finds its laser, and tools find the true
geometry. Ground truth (true camera models, target directions, label maps)
is for tests, training and evaluation; runtime code never imports this.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foveate.calibration.galvo_geometry import GalvoCamera, PinholeCamera
from foveate.hardware.sim.board import Board
from foveate.hardware.sim.scene import load_scene, make_scene
from foveate.system.context import RigContext
from foveate.system.errors import ConfigError

class Twin:
    """Scene, clock, devices and the calibration board of one simulated rig.

    ``sim:`` settings: ``seed`` (0), ``scene`` (``street``; see ``scene.SCENES``),
    ``scene_file`` (a scene saved with ``save_scene``; overrides ``scene``),
    ``assembly_error_scale`` (1.0; 0 builds the ideal geometry), and the
    scene's own settings (``n_humans``, ``n_vehicles``, ``human_speed_mps``,
    ``vehicle_speed_mps``, ``size_scale``, ``cam_height_m``, ``fine_step_deg``).
    """

    def __init__(self, context: RigContext) -> None:
        cfg: dict[str, Any] = dict(context.sim)
        self.source = context.source
        self.clock = context.clock
        try:
            self.seed = int(cfg.pop("seed", 0))
            self.assembly_error_scale = float(cfg.pop("assembly_error_scale", 1.0))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{context.source}: sim: seed must be an integer and assembly_error_scale a number ({exc})") from None
        if not 0.0 <= self.assembly_error_scale <= 10.0:
            raise ConfigError(f"{context.source}: sim.assembly_error_scale: expected 0..10, got {self.assembly_error_scale}")
        from foveate.hardware.sim.faults import parse_faults

        self.faults = parse_faults(cfg.pop("faults", None), f"{context.source}: sim.faults")
        self._shared = context.shared  # the rig's devices (a search camera may follow a serial galvo)
        scene_file = cfg.pop("scene_file", None)
        scene_name = str(cfg.pop("scene", "street"))
        if scene_file is not None:
            if cfg:
                raise ConfigError(f"{context.source}: sim.{sorted(cfg)[0]}: not allowed with sim.scene_file (the file holds the whole scene)")
            self.scene = load_scene(context.resolve(scene_file))
        else:
            self.scene = make_scene(scene_name, seed=self.seed, where=f"{context.source}: sim", **cfg)
        self.devices: dict[str, Any] = {}
        self.board: Board | None = None

    # ------------------------------------------------------------------ time
    def now_s(self) -> float:
        return self.clock.now_ns() * 1e-9

    # ---------------------------------------------------------------- boards
    def set_board(self, T_wb: np.ndarray | None, cols: int = 9, rows: int = 6, square_mm: float = 20.0) -> None:
        """Place a checkerboard at pose ``T_wb`` (board -> rig, mm), or remove it with ``None``.

        Inner corners ``cols x rows``; corner (i, j) at board (i * square_mm, j * square_mm, 0)
        as OpenCV's object points; every camera that sees it renders it, anti-aliased, in front of the scene.
        """
        if T_wb is None:
            self.board = None
            return
        try:
            self.board = Board(np.asarray(T_wb, dtype=np.float64), int(cols), int(rows), float(square_mm))
        except ValueError as exc:
            raise ConfigError(f"set_board: {exc}") from None

    def galvo_device(self, name: str):
        """The galvo a search camera follows: a sim galvo, or a serial galvo on a simulated controller
        (``galvosim://``), seen through ``ControllerMirror``; None when there is neither."""
        dev = self.devices.get(name)
        if dev is not None:
            return dev
        rig_dev = self._shared.get("rig.devices", {}).get(name)
        link = getattr(rig_dev, "link", None)
        if link is None:
            return None
        from foveate.hardware.sim.galvo_mirror import ControllerMirror

        self.devices[name] = mirror = ControllerMirror(rig_dev, self)
        return mirror

    # ---------------------------------------------------------- ground truth
    def _device(self, name: str):
        dev = self.devices.get(name)
        if dev is None:
            raise ConfigError(f"{self.source}: no simulated device named '{name}' (have: {', '.join(self.devices) or 'none'})")
        return dev

    def galvo_camera(self, camera_name: str) -> GalvoCamera:
        """True geometry of a galvo-steered camera (assembly errors and the galvo's gain/offset errors included)."""
        dev = self._device(camera_name)
        if not hasattr(dev, "true_galvo_camera"):
            raise ConfigError(f"{self.source}: devices.{camera_name}: not a galvo-steered sim camera (view: search)")
        return dev.true_galvo_camera()

    def nominal_galvo_camera(self, camera_name: str) -> GalvoCamera:
        """The design geometry of the same camera (no assembly, gain or offset errors): a calibration's start."""
        dev = self._device(camera_name)
        if not hasattr(dev, "nominal_galvo_camera"):
            raise ConfigError(f"{self.source}: devices.{camera_name}: not a galvo-steered sim camera (view: search)")
        return dev.nominal_galvo_camera()

    def camera_model(self, camera_name: str) -> tuple[PinholeCamera, np.ndarray]:
        """True (PinholeCamera, T_cw 4x4 rig -> camera) of a fixed camera (wide frame or event camera)."""
        dev = self._device(camera_name)
        if not hasattr(dev, "true_camera_model"):
            raise ConfigError(f"{self.source}: devices.{camera_name}: not a fixed sim camera (view: wide, or an event camera)")
        return dev.true_camera_model()

    def target_directions(self, t_s: float) -> dict[int, np.ndarray]:
        """Unit rig-frame direction of each target's billboard centre at ``t_s`` (panorama scenes)."""
        from foveate.hardware.sim.panorama import az_el_to_dirs

        views = getattr(self.scene, "target_views", None)
        if views is None:
            return {}
        return {v.id: az_el_to_dirs(*v.centre_deg) for v in views(t_s)}

    def save_scene(self, path: str | Path) -> Path:
        from foveate.hardware.sim.scene import save_scene

        return save_scene(self.scene, path)


def twin_for(context: RigContext) -> Twin:
    """The rig's twin, created on first use and shared by all its sim devices."""
    twin = context.shared.get("sim.twin")
    if twin is None:
        twin = context.shared["sim.twin"] = Twin(context)
    return twin
