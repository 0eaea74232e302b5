"""The simulated laser: true sheet geometry, fan, thickness, galvo angle errors.

The true sheet is a ``DynamicLaser`` (the calibration's own model, so the twin
and the calibration share one mirror model); the sim adds what a renderer needs
and a calibration never sees: the emitter point (for shadows and fall-off), the
fan's angular extent, the Gaussian thickness, and the mirror's per-move
repeatability error and DAC command quantisation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from foveate.calibration.galvo_geometry import unit
from foveate.calibration.light_section.laser_model import DynamicLaser, nominal_laser


@dataclass(frozen=True)
class GalvoAngleErrors:
    """Angle errors of a real galvo that a command cannot remove.

    ``repeatability_urad``: RMS mechanical error drawn afresh for every move (deterministic
    from ``seed`` and the move number). ``dac_bits`` over ``range_deg``: the command is
    quantised to the DAC step (0 disables).
    """

    repeatability_urad: float = 15.0
    dac_bits: int = 16
    range_deg: float = 40.0
    seed: int = 7

    @property
    def lsb_deg(self) -> float:
        return self.range_deg / (2**self.dac_bits) if self.dac_bits > 0 else 0.0

    def quantise(self, command_deg: float) -> float:
        q = self.lsb_deg
        return float(np.round(command_deg / q) * q) if q > 0 else float(command_deg)

    def move_error_deg(self, move: int, axis: int = 0) -> float:
        if self.repeatability_urad <= 0:
            return 0.0
        rng = np.random.default_rng([self.seed, int(move), axis])
        return float(np.degrees(rng.normal(0.0, self.repeatability_urad * 1e-6)))

    def true_angle_deg(self, target_deg: float, settled_deg: float, move: int, axis: int = 0) -> float:
        """Angle the mirror really holds: dynamics (``settled_deg``) + quantisation + repeatability."""
        return settled_deg + (self.quantise(target_deg) - target_deg) + self.move_error_deg(move, axis)


@dataclass(frozen=True)
class SheetState:
    """The laser sheet at one instant: plane, virtual emitter, central ray, fan and thickness (mm)."""

    normal: np.ndarray  # (3,)
    d: float
    source: np.ndarray  # (3,) virtual emitter (emitter mirrored by the galvo)
    central_dir: np.ndarray  # (3,) unit central ray of the fan, in the sheet
    fan_half_deg: float
    sigma_mm: float


@dataclass(frozen=True)
class SimLaserOptics:
    """True laser geometry of a simulated light-section rig."""

    model: DynamicLaser = field(default_factory=nominal_laser)
    emitter_mm: tuple[float, float, float] | None = None  # None: the design's, ``model.meta["emitter_mm"]``
    beam_dir: tuple[float, float, float] | None = None  # None: from the emitter to the mirror axis
    fan_half_deg: float = 26.0
    sigma_mm: float = 0.5  # Gaussian 1-sigma half-thickness of the sheet
    peak: float = 0.8  # stripe peak on albedo 1 at 2 m, full power, 2 ms exposure (fraction of full scale)
    errors: GalvoAngleErrors = field(default_factory=GalvoAngleErrors)

    def sheet_at(self, angle_deg: float) -> SheetState:
        """Sheet for a *true* mirror angle (command-equivalent degrees of the model's mirror)."""
        n, d = self.model.sheet(angle_deg)
        M = self.model.reflection(angle_deg)
        # The emitter and beam lie in the emitted sheet (project them, in case the sheet was perturbed).
        n0 = unit(self.model.normal0)
        e = np.asarray(self.emitter_mm if self.emitter_mm is not None else self.model.meta["emitter_mm"], float)
        e = e - (n0 @ e - self.model.d0) * n0
        b = unit(self.beam_dir) if self.beam_dir is not None else unit(np.asarray(self.model.mirror.axis_point) - e)
        b = unit(b - (b @ n0) * n0)
        src = M[:3, :3] @ e + M[:3, 3]
        cdir = unit(M[:3, :3] @ b)
        return SheetState(n, d, src, cdir, self.fan_half_deg, self.sigma_mm)


def perturbed_laser(optics: SimLaserOptics, seed: int = 3, angle_deg: float = 0.4, shift_mm: float = 2.0,
                    gain_err: float = 0.004) -> SimLaserOptics:
    """The same optics with mounting errors (what a calibration has to find): a tilted sheet,
    a shifted and tilted mirror axis, a mirror zero offset and a gain error."""
    from dataclasses import replace

    from foveate.calibration.galvo_geometry import rotate_about

    rng = np.random.default_rng(seed)
    rot = lambda v: rotate_about(unit(rng.normal(size=3)), np.deg2rad(angle_deg) * rng.uniform(0.5, 1.0), v)  # noqa: E731
    m = optics.model.mirror
    mirror = replace(m, axis_point=np.asarray(m.axis_point) + rng.normal(0, shift_mm, 3), axis_dir=rot(m.axis_dir),
                     normal0=rot(m.normal0), gain=m.gain * (1 + rng.normal(0, gain_err)),
                     offset_deg=m.offset_deg + rng.normal(0, angle_deg))
    model = DynamicLaser(rot(optics.model.normal0), optics.model.d0 + rng.normal(0, shift_mm), mirror, meta=optics.model.meta)
    return replace(optics, model=model)
