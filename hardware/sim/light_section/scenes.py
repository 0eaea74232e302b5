"""The light-section scenes: exact geometry in the rig frame (mm; x right, y down, z forward).

The camera galvo's outer mirror is at the origin; the measuring volume is
x in [-550, 550], y in [-650, 650], z in [1600, 2250] (1100 x 1300 x 650 mm).
``docs/light_section.md`` lists the reference scene number by number (generated
from ``reference_scene().describe()``).
"""

from __future__ import annotations

import numpy as np

from foveate.hardware.sim.light_section.surfaces import BumpPatch, Box, Rectangle, SceneGeometry, Sphere

VOLUME_MM = ((-550.0, -650.0, 1600.0), (550.0, 650.0, 2250.0))
BACK_Z_MM = 2250.0

#: Gauge-block staircase: heights above the back plane (toward the camera), mm, left to right.
STAIR_HEIGHTS_MM = (5.0, 10.0, 20.0, 35.0, 50.0)
STAIR_X0_MM, STAIR_BLOCK_W_MM = 60.0, 60.0
STAIR_Y_MM = (-480.0, -330.0)


def _staircase() -> list[Box]:
    blocks = []
    for i, h in enumerate(STAIR_HEIGHTS_MM):
        x0 = STAIR_X0_MM + i * STAIR_BLOCK_W_MM
        blocks.append(Box(f"block_{i + 1}", albedo=0.75, lo=(x0, STAIR_Y_MM[0], BACK_Z_MM - h),
                          hi=(x0 + STAIR_BLOCK_W_MM, STAIR_Y_MM[1], BACK_Z_MM)))
    return blocks


def reference_scene() -> SceneGeometry:
    """Back plane, a tilted front plate, six spheres, a five-step gauge-block staircase, a free-form patch."""
    tilt = np.deg2rad(25.0)
    surfaces = [
        Rectangle("back_plane", albedo=0.55, centre=(0.0, 0.0, BACK_Z_MM), normal=(0.0, 0.0, -1.0),
                  u=(1.0, 0.0, 0.0), half_size=(550.0, 650.0)),
        Rectangle("front_plate", albedo=0.7, centre=(330.0, 30.0, 1680.0),
                  normal=(float(-np.sin(tilt)), 0.0, float(-np.cos(tilt))), u=(0.0, 1.0, 0.0), half_size=(120.0, 110.0)),
        Sphere("sphere_1", albedo=0.8, centre=(-380.0, -420.0, 1750.0), radius=50.8),
        Sphere("sphere_2", albedo=0.8, centre=(-120.0, -420.0, 2000.0), radius=38.1),
        Sphere("sphere_3", albedo=0.8, centre=(0.0, 0.0, 1900.0), radius=63.5),
        Sphere("sphere_4", albedo=0.8, centre=(-380.0, 0.0, 2150.0), radius=50.0),
        Sphere("sphere_5", albedo=0.8, centre=(130.0, 420.0, 1700.0), radius=25.4),
        Sphere("sphere_6", albedo=0.8, centre=(400.0, 420.0, 2050.0), radius=44.45),
        *_staircase(),
        BumpPatch("freeform", albedo=0.65, cx=-300.0, cy=400.0, z0=2150.0, half_size=(150.0, 130.0),
                  amplitude=60.0, sigma=(70.0, 55.0), ripple=0.15, k=(0.03, 0.025)),
    ]
    return SceneGeometry("reference", tuple(surfaces), VOLUME_MM,
                         meta={"stair_heights_mm": list(STAIR_HEIGHTS_MM), "back_plane_z_mm": BACK_Z_MM})


def plane_scene(z_mm: float = 1900.0, tilt_deg: float = 0.0, size_mm=(1400.0, 1600.0), albedo: float = 0.7) -> SceneGeometry:
    """One plane at depth ``z_mm`` facing the camera, turned ``tilt_deg`` about the rig y axis (tests, calibration)."""
    t = np.deg2rad(tilt_deg)
    plane = Rectangle("plane", albedo=albedo, centre=(0.0, 0.0, float(z_mm)),
                      normal=(float(-np.sin(t)), 0.0, float(-np.cos(t))), u=(0.0, 1.0, 0.0),
                      half_size=(size_mm[1] / 2, size_mm[0] / 2))
    return SceneGeometry(f"plane_{z_mm:g}", (plane,), VOLUME_MM)


def spheres_scene() -> SceneGeometry:
    """A back plane and a 3 x 3 grid of 50.8 mm spheres spread over the volume's depth."""
    surfaces: list = [Rectangle("back_plane", albedo=0.55, centre=(0.0, 0.0, BACK_Z_MM), normal=(0.0, 0.0, -1.0),
                                u=(1.0, 0.0, 0.0), half_size=(550.0, 650.0))]
    k = 0
    for j, y in enumerate((-420.0, 0.0, 420.0)):
        for i, x in enumerate((-360.0, 0.0, 360.0)):
            k += 1
            z = 1700.0 + 200.0 * ((i + j) % 3)
            surfaces.append(Sphere(f"sphere_{k}", albedo=0.8, centre=(x, y, z), radius=50.8))
    return SceneGeometry("spheres", tuple(surfaces), VOLUME_MM)


#: Scene builders by name (``foveate scan --scene NAME``).
SCENES = {
    "reference": reference_scene,
    "spheres": spheres_scene,
    "plane": plane_scene,
}


def scene_geometry(name: str) -> SceneGeometry:
    try:
        return SCENES[name]()
    except KeyError:
        raise KeyError(f"unknown light-section scene '{name}' (expected one of: {', '.join(SCENES)})") from None
