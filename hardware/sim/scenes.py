"""Reference panorama scenes generated from a seed: street, parking_lot, plaza.

Each generator lays out the static world in metres and places humans and
vehicles on trajectories typical of the place (people on sidewalks and
crossings, vehicles in lanes; parked and manoeuvring cars; people wandering
a plaza). Same seed and settings give the same scene. The rig looks out from
``cam_height_m`` above the ground, so targets 40-150 m away span roughly
1-25 wide-camera pixels and fill a fraction of the search view.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from foveate.hardware.sim.panorama import Layout, PanoramaScene, Target, Trajectory
from foveate.hardware.sim.scene import HUMAN, NATURE, OBJECT, VEHICLE
from foveate.system.errors import ConfigError

MAX_TARGETS = 200


class _Generated(PanoramaScene):
    """Shared settings handling of the generated scenes."""

    default_humans = 8
    default_vehicles = 5
    default_height_m = 12.0

    @classmethod
    def from_settings(cls, seed: int = 0, n_humans: int | None = None, n_vehicles: int | None = None,
                      human_speed_mps: Sequence[float] = (0.8, 1.8), vehicle_speed_mps: Sequence[float] | None = None,
                      size_scale: float = 1.0, cam_height_m: float | None = None, fine_step_deg: float = 0.01):
        n_h = cls.default_humans if n_humans is None else int(n_humans)
        n_v = cls.default_vehicles if n_vehicles is None else int(n_vehicles)
        if n_h < 0 or n_v < 0 or n_h + n_v > MAX_TARGETS:
            raise ConfigError(f"sim: n_humans={n_h}, n_vehicles={n_v}: counts must be >= 0 with at most {MAX_TARGETS} targets")
        hs = _range(human_speed_mps, "human_speed_mps")
        vs = _range(vehicle_speed_mps if vehicle_speed_mps is not None else cls.default_vehicle_speed, "vehicle_speed_mps")
        if not 0.1 <= float(size_scale) <= 10:
            raise ConfigError(f"sim.size_scale: expected a factor in [0.1, 10], got {size_scale}")
        if not 0.001 <= float(fine_step_deg) <= 0.1:
            raise ConfigError(f"sim.fine_step_deg: expected 0.001..0.1 deg, got {fine_step_deg}")
        h = cls.default_height_m if cam_height_m is None else float(cam_height_m)
        if not 1.0 <= h <= 200.0:
            raise ConfigError(f"sim.cam_height_m: expected 1..200 m, got {h}")
        rng = np.random.default_rng(seed)
        layout = cls._layout(rng, h)
        layout.texture_seed = int(seed)
        targets = cls._targets(rng, n_h, n_v, hs, vs, float(size_scale))
        return cls(layout, targets, fine_step_deg=float(fine_step_deg))

    default_vehicle_speed = (5.0, 14.0)

    @classmethod
    def _layout(cls, rng, h: float) -> Layout:
        raise NotImplementedError

    @classmethod
    def _targets(cls, rng, n_h, n_v, hs, vs, scale) -> list[Target]:
        raise NotImplementedError


def _range(v, key: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in v)
    except (TypeError, ValueError):
        raise ConfigError(f"sim.{key}: expected [min, max] in m/s, got {v!r}") from None
    if not 0 <= lo <= hi <= 60:
        raise ConfigError(f"sim.{key}: expected 0 <= min <= max <= 60 m/s, got {[lo, hi]}")
    return lo, hi


def _human(rng, i: int, traj: Trajectory, scale: float) -> Target:
    size = [0.55 * scale, rng.uniform(1.6, 1.9) * scale]
    pal = [rng.uniform(0.1, 0.9), rng.uniform(0.08, 0.5), rng.uniform(0.03, 0.2), rng.uniform(0.45, 0.75)]
    return Target(i, HUMAN, traj, size, [round(float(p), 4) for p in pal])


def _vehicle(rng, i: int, traj: Trajectory, scale: float) -> Target:
    size = [rng.uniform(4.1, 4.9) * scale, 1.8 * scale, rng.uniform(1.4, 1.65) * scale]
    pal = [rng.uniform(0.08, 0.95), rng.uniform(0.1, 0.3), 0.05, 0.95]
    return Target(i, VEHICLE, traj, size, [round(float(p), 4) for p in pal])


def _facades(rng, x0: float, x1: float, z_lo: float, z_hi: float, hmin: float, hmax: float) -> list[dict]:
    out, x = [], x0
    while x < x1:
        w = float(rng.uniform(8, 22))
        out.append({"x0": round(x, 2), "x1": round(min(x + w, x1), 2), "z": round(float(rng.uniform(z_lo, z_hi)), 2),
                    "height": round(float(rng.uniform(hmin, hmax)), 2), "tone": round(float(rng.uniform(0.35, 0.62)), 3),
                    "win_dx": round(float(rng.uniform(2.4, 3.6)), 2), "win_dy": round(float(rng.uniform(3.0, 3.6)), 2)})
        x += w
    return out


class StreetScene(_Generated):
    """A street seen from a 12 m high mast: park in front, sidewalks, a two-lane road, buildings behind."""

    name = "street"
    default_humans = 10
    default_vehicles = 6

    Z_NEAR_WALK = (50.0, 55.0)
    Z_ROAD = (55.0, 65.0)
    Z_FAR_WALK = (65.0, 70.0)

    @classmethod
    def _layout(cls, rng, h):
        ground = [{"z0": 15.0, "z1": 50.0, "material": "grass"},
                  {"z0": 50.0, "z1": 55.0, "material": "sidewalk"},
                  {"z0": 55.0, "z1": 65.0, "material": "road"},
                  {"z0": 65.0, "z1": 70.0, "material": "sidewalk"},
                  {"z0": 70.0, "z1": 400.0, "material": "paving"}]
        markings = [{"type": "dashes", "z": 60.0, "width": 0.18, "period": 6.0},
                    {"type": "crosswalk", "x0": -14.0, "x1": -8.0, "z0": 55.0, "z1": 65.0},
                    {"type": "crosswalk", "x0": 9.0, "x1": 15.0, "z0": 55.0, "z1": 65.0}]
        facades = _facades(rng, -120.0, 120.0, 72.0, 82.0, 14.0, 34.0)
        trees = [{"x": round(float(x), 2), "z": round(float(rng.uniform(44, 49)), 2), "trunk_h": round(float(rng.uniform(2.0, 3.0)), 2),
                  "crown_r": round(float(rng.uniform(2.0, 3.5)), 2), "tone": round(float(rng.uniform(0.22, 0.34)), 3)}
                 for x in np.sort(rng.uniform(-45, 45, 7))]
        poles = [{"x": round(float(x), 2), "z": 54.6, "height": 8.0, "width": 0.2, "head": "lamp"} for x in np.arange(-60, 61, 24) + rng.uniform(-2, 2)]
        poles += [{"x": -15.0, "z": 54.7, "height": 4.5, "width": 0.15, "head": "light"},
                  {"x": 16.0, "z": 65.3, "height": 4.5, "width": 0.15, "head": "light"},
                  {"x": round(float(rng.uniform(-30, 30)), 2), "z": 54.7, "height": 3.0, "width": 0.1, "head": "sign"},
                  {"x": round(float(rng.uniform(-30, 30)), 2), "z": 65.3, "height": 3.0, "width": 0.1, "head": "sign"}]
        boxes = [{"x": round(float(x), 2), "z": 52.0, "w": 1.8, "y0": 0.0, "h": 0.9, "tone": 0.3, "slats": True, "cls": OBJECT}
                 for x in rng.uniform(-35, 35, 3)]
        boxes += [{"x": round(float(rng.uniform(-30, 30)), 2), "z": 40.0, "w": 6.0, "y0": 0.0, "h": 1.0, "tone": 0.24, "cls": NATURE}]
        return Layout(cam_height_m=h, ground=ground, markings=markings, facades=facades, trees=trees, poles=poles, boxes=boxes)

    @classmethod
    def _targets(cls, rng, n_h, n_v, hs, vs, scale):
        out = []
        for i in range(n_h):
            speed = float(rng.uniform(*hs))
            if rng.uniform() < 0.25:  # a pedestrian using a crossing, back and forth
                x = float(rng.choice([-11.0, 12.0]) + rng.uniform(-2, 2))
                traj = Trajectory([[x, 52.5], [x + rng.uniform(-1, 1), 67.5]], speed, "pingpong", float(rng.uniform(0, 30)))
            else:
                z = float(rng.choice([rng.uniform(*cls.Z_NEAR_WALK), rng.uniform(*cls.Z_FAR_WALK)]))
                pts = [[-70.0, z], [70.0, z]] if rng.uniform() < 0.5 else [[70.0, z], [-70.0, z]]
                traj = Trajectory(pts, speed, "wrap", float(rng.uniform(0, 140)))
            out.append(_human(rng, i, traj, scale))
        for k in range(n_v):
            lane = int(rng.integers(0, 2))
            z = 57.5 if lane == 0 else 62.5
            pts = [[-110.0, z], [110.0, z]] if lane == 0 else [[110.0, z], [-110.0, z]]
            traj = Trajectory(pts, float(rng.uniform(*vs)), "wrap", float(rng.uniform(0, 220)))
            out.append(_vehicle(rng, n_h + k, traj, scale))
        return out


class ParkingLotScene(_Generated):
    """A parking lot from a 10 m pole: bay rows, aisles with slow cars, parked cars, people walking to them."""

    name = "parking_lot"
    default_humans = 6
    default_vehicles = 16
    default_height_m = 10.0
    default_vehicle_speed = (1.5, 5.0)
    ROWS = (35.0, 50.0, 65.0, 80.0)  # bay rows: bays span [z, z + 5]

    @classmethod
    def _layout(cls, rng, h):
        ground = [{"z0": 12.0, "z1": 25.0, "material": "sidewalk"},
                  {"z0": 25.0, "z1": 92.0, "material": "parking"},
                  {"z0": 92.0, "z1": 96.0, "material": "grass"},
                  {"z0": 96.0, "z1": 400.0, "material": "paving"}]
        markings = [{"type": "bays", "z0": z, "z1": z + 5.0, "period": 2.6} for z in cls.ROWS]
        facades = _facades(rng, -90.0, 90.0, 100.0, 110.0, 6.0, 14.0)
        trees = [{"x": round(float(x), 2), "z": 94.0, "trunk_h": 2.5, "crown_r": round(float(rng.uniform(2.5, 4.0)), 2),
                  "tone": round(float(rng.uniform(0.2, 0.32)), 3)} for x in np.arange(-70, 71, 14) + rng.uniform(-3, 3, 11)]
        poles = [{"x": round(float(x), 2), "z": z + 5.5, "height": 9.0, "width": 0.22, "head": "lamp"}
                 for z in cls.ROWS[::2] for x in (-30.0, 0.0, 30.0)]
        poles += [{"x": -40.0, "z": 26.0, "height": 3.0, "width": 0.1, "head": "sign"}]
        boxes = [{"x": 35.0, "z": 22.0, "w": 3.0, "y0": 0.0, "h": 2.5, "tone": 0.5, "cls": OBJECT}]  # ticket machine / kiosk
        return Layout(cam_height_m=h, ground=ground, markings=markings, facades=facades, trees=trees, poles=poles, boxes=boxes)

    @classmethod
    def _targets(cls, rng, n_h, n_v, hs, vs, scale):
        out = []
        aisles = [(a + b + 5.0) / 2 for a, b in zip(cls.ROWS[:-1], cls.ROWS[1:])]  # between bay rows
        for i in range(n_h):
            z_a = float(rng.choice(aisles))
            x0 = float(rng.uniform(-40, 40))
            pts = [[x0, 20.0], [x0 + rng.uniform(-3, 3), z_a], [x0 + rng.uniform(-25, 25), z_a]]
            out.append(_human(rng, i, Trajectory(pts, float(rng.uniform(*hs)), "pingpong", float(rng.uniform(0, 60))), scale))
        n_parked = int(round(n_v * 0.6))
        slots = rng.choice(np.arange(-46.8, 46.9, 2.6), size=(n_parked,), replace=True)
        for k in range(n_v):
            if k < n_parked:
                z = float(rng.choice(cls.ROWS)) + 2.5
                traj = Trajectory([[float(slots[k]), z], [float(slots[k]), z + 1.0]], 0.0, "wrap")  # parked: faces the aisle
            else:
                z = float(rng.choice(aisles))
                pts = [[-60.0, z], [60.0, z], [60.0, z + 15.0], [-60.0, z + 15.0]] if z + 15 < 90 else [[-60.0, z], [60.0, z]]
                traj = Trajectory(pts, float(rng.uniform(*vs)), "loop" if len(pts) > 2 else "pingpong", float(rng.uniform(0, 200)))
            out.append(_vehicle(rng, n_h + k, traj, scale))
        return out


class PlazaScene(_Generated):
    """A pedestrian plaza from a 15 m building: people wandering around a fountain, a road and facades behind."""

    name = "plaza"
    default_humans = 24
    default_vehicles = 3
    default_height_m = 15.0

    @classmethod
    def _layout(cls, rng, h):
        ground = [{"z0": 20.0, "z1": 110.0, "material": "paving"},
                  {"z0": 110.0, "z1": 118.0, "material": "road"},
                  {"z0": 118.0, "z1": 400.0, "material": "sidewalk"}]
        markings = [{"type": "dashes", "z": 114.0, "width": 0.18, "period": 6.0}]
        facades = _facades(rng, -160.0, 160.0, 122.0, 132.0, 12.0, 30.0)
        trees = []
        for k in range(10):
            a = 2 * math.pi * k / 10 + rng.uniform(-0.1, 0.1)
            trees.append({"x": round(28 * math.cos(a), 2), "z": round(65 + 28 * math.sin(a), 2), "trunk_h": 2.4,
                          "crown_r": round(float(rng.uniform(2.2, 3.4)), 2), "tone": round(float(rng.uniform(0.2, 0.32)), 3)})
        poles = [{"x": round(float(x), 2), "z": round(float(z), 2), "height": 6.0, "width": 0.16, "head": "lamp"}
                 for x, z in zip(rng.uniform(-50, 50, 6), rng.uniform(35, 100, 6))]
        boxes = [{"x": 0.0, "z": 65.0, "w": 12.0, "y0": 0.0, "h": 1.0, "tone": 0.58, "cls": OBJECT},  # fountain basin
                 {"x": 0.0, "z": 64.9, "w": 1.2, "y0": 1.0, "h": 3.0, "tone": 0.7, "cls": OBJECT}]
        boxes += [{"x": round(float(x), 2), "z": round(float(z), 2), "w": 1.8, "y0": 0.0, "h": 0.9, "tone": 0.3, "slats": True, "cls": OBJECT}
                  for x, z in zip(rng.uniform(-40, 40, 6), rng.uniform(40, 95, 6))]
        boxes += [{"x": -38.0, "z": 100.0, "w": 4.0, "y0": 0.0, "h": 3.0, "tone": 0.45, "cls": OBJECT}]  # kiosk
        return Layout(cam_height_m=h, ground=ground, markings=markings, facades=facades, trees=trees, poles=poles, boxes=boxes)

    @classmethod
    def _targets(cls, rng, n_h, n_v, hs, vs, scale):
        out = []
        for i in range(n_h):
            c = np.array([rng.uniform(-45, 45), rng.uniform(35, 100)])
            n = int(rng.integers(3, 6))
            pts = [[round(float(c[0] + rng.uniform(-15, 15)), 2), round(float(np.clip(c[1] + rng.uniform(-15, 15), 25, 108)), 2)] for _ in range(n)]
            out.append(_human(rng, i, Trajectory(pts, float(rng.uniform(*hs)), "loop", float(rng.uniform(0, 100))), scale))
        for k in range(n_v):
            z = 112.0 if k % 2 == 0 else 116.0
            pts = [[-150.0, z], [150.0, z]] if k % 2 == 0 else [[150.0, z], [-150.0, z]]
            out.append(_vehicle(rng, n_h + k, Trajectory(pts, float(rng.uniform(*vs)), "wrap", float(rng.uniform(0, 300))), scale))
        return out
