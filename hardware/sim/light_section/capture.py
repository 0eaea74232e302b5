"""Direct captures of a light-section scene through a known galvo camera (no rig, no clock).

For calibration captures with boards placed by hand (a board is a scene of
its own) and for tests that need the ground truth of every pixel. The image
model matches the sim camera: intensity * 255 * gain plus Gaussian read noise,
clipped to uint8.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from foveate.calibration.galvo_geometry import GalvoCamera, unit
from foveate.hardware.sim.light_section.scene import LightSectionScene
from foveate.hardware.sim.light_section.surfaces import Rectangle, SceneGeometry


class DirectCamera:
    """Renders ``scene`` as seen by ``camera`` (the true galvo camera) at given mirror commands."""

    def __init__(self, camera: GalvoCamera, scene: LightSectionScene, noise_std: float = 2.0, gain: float = 1.0,
                 seed: int = 0) -> None:
        self.camera = camera
        self.scene = scene
        self.noise_std = float(noise_std)
        self.gain = float(gain)
        self.rng = np.random.default_rng(seed)
        cam = camera.camera
        uu, vv = np.meshgrid(np.arange(cam.width, dtype=np.float64), np.arange(cam.height, dtype=np.float64))
        self._r_cam = cam.normalised_rays(np.stack([uu.ravel(), vv.ravel()], axis=1))  # (N, 3) camera frame

    def rays(self, theta_x_deg: float, theta_y_deg: float) -> tuple[np.ndarray, np.ndarray]:
        """Virtual centre (3,) and rig-frame unit directions (H, W, 3)."""
        T = self.camera.virtual_extrinsics(theta_x_deg, theta_y_deg)
        R, t = T[:3, :3], T[:3, 3]
        cam = self.camera.camera
        return -R.T @ t, (self._r_cam @ R).reshape(cam.height, cam.width, 3)

    def to_image(self, intensity: np.ndarray) -> np.ndarray:
        level = intensity * (255.0 * self.gain)
        if self.noise_std > 0:
            level = level + self.rng.normal(0.0, self.noise_std, level.shape).astype(np.float32)
        return np.clip(np.round(level), 0, 255).astype(np.uint8)

    def capture(self, theta_x_deg: float, theta_y_deg: float, laser_true_deg: float | None,
                power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Image (H, W) uint8 and labels at the camera commands with the laser mirror at a true angle."""
        o, d = self.rays(theta_x_deg, theta_y_deg)
        inten, labels = self.scene.render_with_laser(o, d, laser_true_deg, power)
        return self.to_image(inten), labels


def board_geometry(T: np.ndarray, size_mm: tuple[float, float] = (600.0, 450.0), albedo: float = 0.8) -> SceneGeometry:
    """A flat board with pose ``T`` (4x4 board -> rig; board plane z = 0, x along its width)."""
    T = np.asarray(T, np.float64)
    rect = Rectangle("board", albedo=albedo, centre=tuple(T[:3, 3]), normal=tuple(T[:3, 2]), u=tuple(T[:3, 0]),
                     half_size=(size_mm[0] / 2, size_mm[1] / 2))
    return SceneGeometry("board", (rect,))


def board_pose_on_ray(origin: np.ndarray, direction: np.ndarray, distance_mm: float, tilt_deg: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Board pose (4x4) centred ``distance_mm`` along a ray, facing back along it, tilted about its x and y axes."""
    d = unit(direction)
    z = -d  # board normal toward the camera
    x = unit(np.cross([0.0, 1.0, 0.0], z))
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1)
    ax, ay = np.deg2rad(tilt_deg)
    Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    Ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    T = np.eye(4)
    T[:3, :3] = R @ Rx @ Ry
    T[:3, 3] = np.asarray(origin, np.float64) + distance_mm * d
    return T


@dataclass
class BoardCapture:
    """One simulated calibration image: the stripe on a board at a known pose."""

    image: np.ndarray
    board_T: np.ndarray
    pose: str
    camera_deg: tuple[float, float]
    laser_deg: float  # the command (what the calibration knows)
    laser_true_deg: float  # the mirror's true angle (quantised, with repeatability error)


def capture_board_stripes(camera: GalvoCamera, scene: LightSectionScene, camera_deg: tuple[float, float],
                          board_T: np.ndarray, pose: str, laser_cmds: np.ndarray, noise_std: float = 2.0,
                          seed: int = 0, size_mm: tuple[float, float] = (600.0, 450.0),
                          repeatability_urad: float = 15.0) -> list[BoardCapture]:
    """Stripe images of one board placement at one view for each laser command.

    The laser mirror's true angle is the DAC-quantised command plus a fresh
    repeatability error (``repeatability_urad`` RMS) per move.
    """
    board_scene = LightSectionScene(board_geometry(board_T, size_mm), scene.optics, ambient=scene.ambient,
                                    speckle_contrast=scene.speckle_contrast, speckle_grain_px=scene.speckle_grain_px,
                                    seed=seed)
    cam = DirectCamera(camera, board_scene, noise_std=noise_std, seed=seed)
    out = []
    err = replace(scene.optics.errors, repeatability_urad=float(repeatability_urad))
    for k, a in enumerate(laser_cmds):
        true = err.true_angle_deg(float(a), float(a), move=seed * 100003 + k)
        img, _ = cam.capture(*camera_deg, true)
        out.append(BoardCapture(img, np.asarray(board_T), pose, tuple(camera_deg), float(a), true))
    return out
