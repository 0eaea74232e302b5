"""Light-section scenes as twin scenes (``sim.scene: light_section_reference``).

Implements the twin's scene protocol (``foveate.hardware.sim.scene``): the
camera hands over its rays, the scene answers intensity and labels. The laser
and its galvo are found by device name in ``twin.devices``; the sheet follows
the laser galvo's *true* mirror angle at the frame's time (its servo position,
wobble, gain and offset errors as the twin's galvo model has them, plus the DAC
quantisation of the command). Labels are surface index + 1 (0: nothing hit);
``geometry.surfaces`` names them.

Surfaces are ray-cast once per camera view and cached; a galvo's wobble moves
the rays by microradians between frames, so each frame re-casts exactly only
the pixels near the laser sheet (found on a coarse grid of the cached hits).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from foveate.calibration.light_section.laser_model import DynamicLaser
from foveate.hardware.sim.light_section.laser import GalvoAngleErrors, SheetState, SimLaserOptics, perturbed_laser
from foveate.hardware.sim.light_section.render import REF_DISTANCE_MM, SpeckleField, ViewHits, cast_view, sheet_blocks
from foveate.hardware.sim.light_section.scenes import SCENES, plane_scene, scene_geometry
from foveate.hardware.sim.light_section.surfaces import SceneGeometry

log = logging.getLogger(__name__)

#: Rays that moved less than this (rad) since the cached view reuse its cast.
SAME_VIEW_RAD = 2e-4  # wobble peaks ~0.9e-4 optical; 2e-4 rad moves a surface point < 0.5 mm (< the margin)
#: Extra margin (mm) when picking pixels near the sheet from a cached cast.
CANDIDATE_MARGIN_MM = 0.6


class LightSectionScene:
    """A light-section scene: analytic geometry, the laser's true optics and the image model.

    Settings (``sim`` block of the rig file, all optional): ``geometry`` (one of
    ``SCENES``), ``laser`` and ``laser_galvo`` (device names), ``laser_errors``
    (true: mount the laser with small random errors a calibration must find),
    ``dac_bits`` (command quantisation of the laser galvo, 0: none),
    ``repeatability_urad`` (extra per-move angle scatter on top of the galvo's
    own wobble), ``sheet_sigma_mm``, ``peak``, ``ambient``,
    ``speckle_contrast``, ``speckle_grain_px``.
    """

    name = "light_section"

    def __init__(self, geometry: SceneGeometry, optics: SimLaserOptics, laser: str = "laser",
                 laser_galvo: str = "laser_galvo", ambient: float = 0.12, speckle_contrast: float = 0.25,
                 speckle_grain_px: float = 0.8, seed: int = 0, shadows: bool = True,
                 settings: dict | None = None) -> None:
        self.geometry = geometry
        self.optics = optics
        self.laser_name = laser
        self.laser_galvo_name = laser_galvo
        self.ambient = float(ambient)
        self.speckle_contrast = float(speckle_contrast)
        self.speckle_grain_px = float(speckle_grain_px)
        self.seed = int(seed)
        self.shadows = shadows
        self.settings = dict(settings or {})
        self._views: list[tuple[np.ndarray, np.ndarray, ViewHits]] = []
        self._speckle: dict[tuple[int, int], SpeckleField] = {}
        self._rng = np.random.default_rng(seed + 1000)

    # -- construction (the twin's registry protocol) ------------------------------------
    @classmethod
    def from_settings(cls, seed: int = 0, geometry: str = "reference", laser: str = "laser",
                      laser_galvo: str = "laser_galvo", laser_errors: bool = True, dac_bits: int = 16,
                      repeatability_urad: float = 0.0, sheet_sigma_mm: float = 0.5, peak: float = 0.8,
                      ambient: float = 0.12, speckle_contrast: float = 0.25, speckle_grain_px: float = 0.8,
                      **unknown: Any) -> "LightSectionScene":
        if unknown:
            raise TypeError(f"unknown light-section setting(s): {', '.join(sorted(unknown))}")
        if geometry not in SCENES:
            raise ValueError(f"geometry: unknown light-section geometry '{geometry}' (expected one of: {', '.join(SCENES)})")
        settings = dict(geometry=geometry, laser=laser, laser_galvo=laser_galvo, laser_errors=laser_errors,
                        dac_bits=dac_bits, repeatability_urad=repeatability_urad, sheet_sigma_mm=sheet_sigma_mm,
                        peak=peak, ambient=ambient, speckle_contrast=speckle_contrast,
                        speckle_grain_px=speckle_grain_px)
        optics = SimLaserOptics(sigma_mm=float(sheet_sigma_mm), peak=float(peak),
                                errors=GalvoAngleErrors(repeatability_urad=float(repeatability_urad),
                                                        dac_bits=int(dac_bits), seed=seed + 7))
        if laser_errors:
            optics = perturbed_laser(optics, seed=seed + 3)
        return cls(scene_geometry(geometry), optics, laser=laser, laser_galvo=laser_galvo, ambient=ambient,
                   speckle_contrast=speckle_contrast, speckle_grain_px=speckle_grain_px, seed=seed, settings=settings)

    def to_dict(self) -> dict:
        return {"seed": self.seed, **self.settings}

    @classmethod
    def from_dict(cls, data: dict) -> "LightSectionScene":
        return cls.from_settings(**dict(data))

    def describe(self) -> dict:
        """Exact geometry (mm) plus the true laser model: the ground truth of a scan."""
        return {**self.geometry.describe(), "laser_true": self.optics.model.to_dict()}

    # -- laser state from the twin's devices -----------------------------------------------
    def laser_power(self, twin: Any, t_ns: int) -> float:
        """Output power fraction of the laser at ``t_ns`` (0 when off or absent)."""
        dev = getattr(twin, "devices", {}).get(self.laser_name) if twin is not None else None
        if dev is None:
            return 0.0
        log_ = getattr(dev, "switch_log", None)
        if log_:
            state = (False, 0.0)
            for t, on, p in log_:
                if t > t_ns:
                    break
                state = (on, p)
            return float(state[1]) if state[0] else 0.0
        return float(dev.power_frac) if getattr(dev, "is_on", False) else 0.0

    def laser_angle_deg(self, twin: Any, t_ns: int) -> float:
        """True mechanical angle of the laser mirror (axis x of the laser galvo) at ``t_ns``."""
        g = twin.devices.get(self.laser_galvo_name)
        if g is None:
            raise KeyError(f"light-section scene: no device '{self.laser_galvo_name}' for the laser galvo")
        t_s = t_ns * 1e-9
        ax = g.axes[0] if hasattr(g, "axes") else None
        if ax is not None and hasattr(ax, "mechanical_deg"):
            angle = ax.mechanical_deg(t_s)
        else:
            angle = g.optical_angles_deg(t_ns)[0]
        target = ax.target_deg if ax is not None else g.commanded_deg[0]
        return self.optics.errors.true_angle_deg(target, angle, getattr(g, "moves", 0))

    def true_laser_model(self, twin: Any = None) -> DynamicLaser:
        """The true sheet as a function of the laser-galvo *command*: the laser optics with the
        galvo's own gain and offset errors folded into the mirror (what a perfect calibration finds)."""
        m = self.optics.model.mirror
        g = getattr(twin, "devices", {}).get(self.laser_galvo_name) if twin is not None else None
        ax = g.axes[0] if g is not None and hasattr(g, "axes") else None
        ge = float(getattr(ax, "gain_error", 0.0))
        oe = float(getattr(ax, "offset_error_deg", 0.0))
        mirror = replace(m, gain=m.gain * (1.0 + ge), offset_deg=m.gain * oe + m.offset_deg)
        return self.optics.model.with_mirror(mirror)

    def sheet(self, twin: Any, t_ns: int) -> SheetState | None:
        if twin is None or self.laser_power(twin, t_ns) <= 0:
            return None
        return self.optics.sheet_at(self.laser_angle_deg(twin, t_ns))

    # -- rendering ---------------------------------------------------------------------
    def view(self, origin: np.ndarray, dirs: np.ndarray) -> ViewHits:
        """Cached cast of the view these rays belong to (recast when the view moved more than ``SAME_VIEW_RAD``)."""
        H, W = dirs.shape[:2]
        probe = dirs[[0, H // 2, H - 1], [0, W // 2, W - 1]].astype(np.float64)
        for o, p, hits in self._views:
            if hits.shape == (H, W) and np.linalg.norm(o - origin) < 0.05 and \
                    np.max(np.linalg.norm(p - probe, axis=1)) < SAME_VIEW_RAD:
                return hits
        hits = cast_view(self.geometry, origin, dirs, self.ambient)
        self._views = [(np.array(origin, np.float64), probe, hits)] + self._views[:1]
        return hits

    def speckle(self, shape: tuple[int, int]) -> SpeckleField:
        if shape not in self._speckle:
            self._speckle[shape] = SpeckleField(shape, self.speckle_grain_px, seed=self.seed)
        return self._speckle[shape]

    def stripe(self, origin: np.ndarray, dirs: np.ndarray, sheet: SheetState, power: float,
               hits: ViewHits | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Lit pixels (flat indices (K,)) and noise-free stripe intensities (K,) for these exact rays."""
        hits = hits or self.view(origin, dirs)
        cand = sheet_blocks(hits, sheet.normal, sheet.d, 4.5 * sheet.sigma_mm + CANDIDATE_MARGIN_MM)
        if cand.size == 0:
            return cand, np.zeros(0)
        d = np.asarray(dirs, np.float64).reshape(-1, 3)[cand]
        t, nrm, obj = self.geometry.cast(origin, d)  # exact, for this frame's rays
        ok = np.isfinite(t)
        cand, d, t, nrm, obj = cand[ok], d[ok], t[ok], nrm[ok], obj[ok]
        X = origin + t[:, None] * d
        s = X @ sheet.normal - sheet.d
        to_src = sheet.source - X
        r = np.linalg.norm(to_src, axis=1)
        L = to_src / r[:, None]
        cos_inc = np.clip(np.einsum("ij,ij->i", nrm, L), 0.0, 1.0)
        in_fan = (-L @ sheet.central_dir) >= np.cos(np.deg2rad(sheet.fan_half_deg))
        albedo = np.array([sf.albedo for sf in self.geometry.surfaces])[obj]
        val = (self.optics.peak * power * albedo * cos_inc * (REF_DISTANCE_MM / r)
               * np.exp(-0.5 * (s / sheet.sigma_mm) ** 2))
        lit = in_fan & (val > 1e-4)
        if self.shadows and np.any(lit):
            idx = np.flatnonzero(lit)
            blocked = self.geometry.occluded(sheet.source, -L[idx], r[idx], eps_mm=0.05)
            lit[idx[blocked]] = False
        return cand[lit], val[lit]

    def render_rays(self, origin_mm: np.ndarray, dirs: np.ndarray, t_s: float, twin: Any) -> tuple[np.ndarray, np.ndarray]:
        """The twin's scene protocol: intensity (H, W) float32 in [0, 1] and labels (H, W) uint8."""
        t_ns = int(round(t_s * 1e9))
        sheet = self.sheet(twin, t_ns)
        power = self.laser_power(twin, t_ns) if sheet is not None else 0.0
        return self.render_sheet(origin_mm, dirs, sheet, power)

    def render_with_laser(self, origin_mm: np.ndarray, dirs: np.ndarray, laser_angle_deg: float | None,
                          power: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Render with the laser mirror at a given *true* angle (no devices; calibration captures, tests)."""
        sheet = None if laser_angle_deg is None else self.optics.sheet_at(float(laser_angle_deg))
        return self.render_sheet(origin_mm, dirs, sheet, power)

    def render_sheet(self, origin_mm: np.ndarray, dirs: np.ndarray, sheet: SheetState | None,
                     power: float) -> tuple[np.ndarray, np.ndarray]:
        origin = np.asarray(origin_mm, np.float64)
        hits = self.view(origin, dirs)
        img = hits.base.copy()
        if sheet is not None and power > 0:
            idx, val = self.stripe(origin, dirs, sheet, power, hits)
            if idx.size and self.speckle_contrast > 0:
                W = hits.shape[1]
                val = val * np.maximum(1.0 + self.speckle_contrast * self.speckle(hits.shape).sample(idx // W, idx % W, self._rng), 0.0)
            img[idx] += val.astype(np.float32)  # flat indices are unique
        return np.clip(img, 0.0, 1.0).reshape(hits.shape), hits.labels


class LightSectionReferenceScene(LightSectionScene):
    """The reference scene of ``docs/light_section.md`` (``sim.scene: light_section_reference``)."""

    name = "light_section_reference"

    @classmethod
    def from_settings(cls, seed: int = 0, **settings: Any) -> "LightSectionScene":
        settings.setdefault("geometry", "reference")
        return super().from_settings(seed=seed, **settings)


class LightSectionSpheresScene(LightSectionScene):
    """A back plane and nine 50.8 mm spheres over the volume's depth (``sim.scene: light_section_spheres``)."""

    name = "light_section_spheres"

    @classmethod
    def from_settings(cls, seed: int = 0, **settings: Any) -> "LightSectionScene":
        settings.setdefault("geometry", "spheres")
        return super().from_settings(seed=seed, **settings)


class LightSectionPlaneScene(LightSectionScene):
    """One plane at ``z_mm`` turned ``tilt_deg`` about the rig's y axis (``sim.scene: light_section_plane``)."""

    name = "light_section_plane"

    @classmethod
    def from_settings(cls, seed: int = 0, z_mm: float = 1900.0, tilt_deg: float = 0.0,
                      **settings: Any) -> "LightSectionScene":
        settings["geometry"] = "plane"
        scene = super().from_settings(seed=seed, **settings)
        scene.geometry = plane_scene(float(z_mm), float(tilt_deg))
        scene.settings.update(z_mm=float(z_mm), tilt_deg=float(tilt_deg))
        scene.settings.pop("geometry", None)
        return scene


def with_optics(scene: LightSectionScene, optics: SimLaserOptics) -> LightSectionScene:
    """The same scene with other laser optics (tests, calibration captures)."""
    return LightSectionScene(scene.geometry, optics, scene.laser_name, scene.laser_galvo_name, scene.ambient,
                             scene.speckle_contrast, scene.speckle_grain_px, scene.seed, scene.shadows,
                             scene.settings)
