"""Dynamic laser model: a line-laser sheet swept by a galvo mirror.

The laser emits a fixed sheet (plane ``normal0 . x = d0`` in the rig frame, mm).
Its galvo mirror (``foveate.calibration.galvo_geometry.Mirror``, the same mirror
model as the galvo camera) reflects it, so at command ``theta`` the sheet in the
rig frame is the image of the fixed sheet under the mirror's reflection::

    n(theta) = H(theta) n0,   d(theta) = d0 - 2 d_m(theta) (n0 . n_m(theta))

with ``H = I - 2 n_m n_m^T`` and the mirror plane ``(n_m, d_m)``. Only mirror 1
(axis x of the laser galvo) is in the laser's path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from foveate.calibration.galvo_geometry import Mirror, reflection_matrix, transform_plane, unit


@dataclass(frozen=True)
class DynamicLaser:
    """Sheet ``(normal0, d0)`` before the mirror and the ``mirror`` that sweeps it (units mm, degrees)."""

    normal0: np.ndarray  # (3,) unit normal of the emitted sheet, rig frame
    d0: float  # mm, the emitted sheet is {x : normal0 . x = d0}
    mirror: Mirror
    meta: dict = field(default_factory=dict, compare=False)

    def sheet(self, command_deg: float) -> tuple[np.ndarray, float]:
        """(n (3,), d) of the sheet in the rig frame at the mirror command ``command_deg``."""
        return transform_plane(self.mirror.matrix(float(command_deg)), unit(self.normal0), float(self.d0))

    def sheets(self, commands_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``sheet``: normals (N, 3) and offsets (N,) for commands (N,)."""
        cmds = np.atleast_1d(np.asarray(commands_deg, dtype=np.float64))
        m = self.mirror
        u = unit(m.axis_dir)
        n0m = np.asarray(m.normal0, np.float64)
        a = np.deg2rad(m.gain * cmds + m.offset_deg)[:, None]
        # Rodrigues for many angles about one axis.
        nm = n0m * np.cos(a) + np.cross(u, n0m) * np.sin(a) + np.outer(np.ones_like(cmds), u) * (u @ n0m) * (1 - np.cos(a))
        dm = nm @ np.asarray(m.axis_point, np.float64) + m.surface_offset_mm
        nL = unit(self.normal0)
        proj = nm @ nL
        n = nL[None, :] - 2.0 * proj[:, None] * nm
        d = self.d0 - 2.0 * dm * proj
        return n, d

    def reflection(self, command_deg: float) -> np.ndarray:
        """4x4 reflection of the mirror at ``command_deg`` (maps the emitter to its virtual image)."""
        return reflection_matrix(*self.mirror.plane(float(command_deg)))

    def transformed(self, T: np.ndarray) -> "DynamicLaser":
        """The same laser expressed in another frame; ``T`` (4x4, rigid) maps old coordinates to new."""
        T = np.asarray(T, np.float64)
        R, t = T[:3, :3], T[:3, 3]
        n0, d0 = transform_plane(T, unit(self.normal0), float(self.d0))
        m = self.mirror
        mirror = replace(m, axis_point=R @ np.asarray(m.axis_point, np.float64) + t, axis_dir=R @ unit(m.axis_dir),
                         normal0=R @ unit(m.normal0))
        meta = dict(self.meta)
        if "emitter_mm" in meta:
            meta["emitter_mm"] = (R @ np.asarray(meta["emitter_mm"], np.float64) + t).tolist()
        return DynamicLaser(n0, d0, mirror, meta)

    def with_mirror(self, mirror: Mirror) -> "DynamicLaser":
        return replace(self, mirror=mirror)

    # -- YAML-able form ---------------------------------------------------------------
    def to_dict(self) -> dict:
        m = self.mirror
        f = lambda v: [float(x) for x in np.ravel(v)]  # noqa: E731
        return {
            "sheet_normal0": f(unit(self.normal0)),
            "sheet_d0_mm": float(self.d0),
            "mirror": {
                "axis_point_mm": f(m.axis_point),
                "axis_dir": f(unit(m.axis_dir)),
                "normal0": f(unit(m.normal0)),
                "surface_offset_mm": float(m.surface_offset_mm),
                "gain": float(m.gain),
                "offset_deg": float(m.offset_deg),
            },
        }

    @staticmethod
    def from_dict(d: dict) -> "DynamicLaser":
        m = d["mirror"]
        mirror = Mirror(
            np.asarray(m["axis_point_mm"], np.float64),
            unit(m["axis_dir"]),
            unit(m["normal0"]),
            surface_offset_mm=float(m.get("surface_offset_mm", 0.0)),
            gain=float(m.get("gain", 1.0)),
            offset_deg=float(m.get("offset_deg", 0.0)),
        )
        return DynamicLaser(unit(d["sheet_normal0"]), float(d["sheet_d0_mm"]), mirror)


def nominal_laser(baseline_mm: float = 1200.0, aim_mm=(0.0, 0.0, 1925.0), emitter_distance_mm: float = 80.0) -> DynamicLaser:
    """An ideal laser galvo ``baseline_mm`` right of the camera galvo (rig x axis), sheet vertical.

    The laser sits ``emitter_distance_mm`` further right and shines along -x onto
    a mirror turning about the rig's y (vertical) axis; its fan is vertical, so
    the sheet contains the y axis and the mirror sweeps it horizontally: each
    mechanical degree turns the sheet by two degrees. At zero command the
    sheet's central ray points at ``aim_mm``.
    """
    B = float(baseline_mm)
    axis_point = np.array([B, 0.0, 0.0])
    out = unit(np.asarray(aim_mm, np.float64) - axis_point)
    out[1] = 0.0
    out = unit(out)
    incoming = np.array([-1.0, 0.0, 0.0])
    n_m = unit(out - incoming)
    mirror = Mirror(axis_point, np.array([0.0, 1.0, 0.0]), n_m)
    # Emitted sheet: contains the beam (-x) and the fan direction (y), through the emitter.
    emitter = axis_point + np.array([emitter_distance_mm, 0.0, 0.0])
    n0 = np.array([0.0, 0.0, 1.0])
    return DynamicLaser(n0, float(n0 @ emitter), mirror, meta={"emitter_mm": emitter.tolist()})
