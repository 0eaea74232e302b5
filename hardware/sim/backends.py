"""Simulated backends of every device interface, bound to one twin and clock.

``SimGalvo`` (two ``SecondOrderAxis``), ``SimFrameCamera`` (``view: wide``: a
fixed ``PinholeCamera``; ``view: search``: a ``GalvoCamera`` steered by a sim
galvo), ``SimEventCamera`` (DVS emulation on a fixed camera) and
``SimLineLaser``. Cameras render the twin's scene through their true model
(``optics.py``, ``render.py``); frames carry ground truth in ``meta``
(``labels``, ``boxes``) for training and evaluation only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field

from foveate.calibration.galvo_geometry import GalvoCamera, PinholeCamera
from foveate.drivers.device import DeviceSettings
from foveate.drivers.event_camera import EventCamera
from foveate.drivers.frame_camera import FrameCamera
from foveate.drivers.galvo import Galvo
from foveate.drivers.line_laser import LineLaser
from foveate.hardware.sim import optics
from foveate.hardware.sim.events import DvsArray, warm_kernels
from foveate.hardware.sim.galvo_dynamics import SecondOrderAxis
from foveate.hardware.sim.panorama import PanoramaScene
from foveate.hardware.sim.render import FixedView, GalvoView, Render
from foveate.hardware.sim.twin import Twin, twin_for
from foveate.system.context import RigContext
from foveate.system.errors import ConfigError, DeviceTimeoutError
from foveate.system.types import EVENT_DTYPE, EventPacket, Frame, GalvoState

Pair = tuple[float, float]
Triple = tuple[float, float, float]
Dist = tuple[float, float, float, float, float]


def _seed(explicit: int | None, twin: Twin | None, name: str, what: str) -> int:
    if explicit is not None:
        return int(explicit)
    return optics.stable_seed(twin.seed if twin is not None else 0, name, what)


# ---------------------------------------------------------------------------- galvo
class SimGalvoSettings(DeviceSettings):
    limits_deg: tuple[Pair, Pair] = ((-15.0, 15.0), (-11.0, 11.0))
    park_deg: Pair = (0.0, 0.0)
    natural_freq_hz: float = Field(2500.0, gt=0)
    damping: float = Field(0.7, gt=0, lt=1)
    slew_deg_s: float | None = Field(4000.0, gt=0)
    accel_deg_s2: float | None = Field(4.0e7, gt=0)
    settle_tol_deg: float = Field(0.002, gt=0)
    noise_deg: float = Field(0.00086, ge=0)  # ~15 µrad RMS position wobble
    gain_error: Pair | None = None  # None: drawn from the seed (sigma 0.3 %)
    offset_error_deg: Pair | None = None  # None: drawn from the seed (sigma 0.02 deg)
    seed: int | None = None


class SimGalvo(Galvo):
    """Two closed-loop axes on the injected clock; ``wait_settled`` sleeps exactly until in position.

    The twin's cameras read ``actual_deg(t_ns)`` (servo position plus wobble); the
    reported ``measured_deg`` is the same signal, as a position sensor would see it,
    and ``measured_at(t_ns)`` replays it at any past time (a logged position sensor).
    Gain and offset errors are invisible here and live in the true ``GalvoCamera``.
    """

    Settings = SimGalvoSettings

    def __init__(self, name, clock, limits_deg=((-15.0, 15.0), (-11.0, 11.0)), park_deg=(0.0, 0.0),
                 natural_freq_hz=2500.0, damping=0.7, slew_deg_s=4000.0, accel_deg_s2=4.0e7, settle_tol_deg=0.002,
                 noise_deg=0.00086, gain_error=None, offset_error_deg=None, seed=None, twin: Twin | None = None) -> None:
        super().__init__(name, clock, limits_deg=limits_deg, park_deg=park_deg)
        s = _seed(seed, twin, name, "galvo")
        rng = np.random.default_rng(s)
        gains = tuple(gain_error) if gain_error is not None else tuple(float(v) for v in rng.normal(0, 0.003, 2))
        offsets = tuple(offset_error_deg) if offset_error_deg is not None else tuple(float(v) for v in rng.normal(0, 0.02, 2))
        self.axes = tuple(
            SecondOrderAxis(natural_freq_hz, damping, self.park_deg[k], slew_deg_s=slew_deg_s, accel_deg_s2=accel_deg_s2,
                            gain_error=float(gains[k]), offset_error_deg=float(offsets[k]), noise_deg=noise_deg, seed=s + k)
            for k in range(2)
        )
        self.settle_tol_deg = float(settle_tol_deg)
        if twin is not None:
            twin.devices[name] = self

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "SimGalvo":
        return cls(name=name, clock=context.clock, twin=twin_for(context), **settings.model_dump())

    def actual_deg(self, t_ns: int | None = None) -> tuple[float, float]:
        """Where the mirrors really are at ``t_ns`` (default now), command units, wobble included."""
        t_s = (self.clock.now_ns() if t_ns is None else t_ns) * 1e-9
        return self.axes[0].actual_deg(t_s), self.axes[1].actual_deg(t_s)

    optical_angles_deg = actual_deg  # the name used by the first twin

    def _settle_time_s(self) -> float:
        return max(ax.settle_time_s(self.settle_tol_deg) for ax in self.axes)

    def _do_move_to(self, theta_x_deg: float, theta_y_deg: float) -> None:
        t_s = self.clock.now_ns() * 1e-9
        self.axes[0].command(theta_x_deg, t_s)
        self.axes[1].command(theta_y_deg, t_s)

    def _do_position(self) -> GalvoState:
        t_ns = self.clock.now_ns()
        x, y = self.actual_deg(t_ns)
        settled = t_ns * 1e-9 >= self._settle_time_s()
        cmd = (self.axes[0].target_deg, self.axes[1].target_deg)
        return GalvoState(cmd, (x, y), settled, t_ns)

    def _do_measured_at(self, t_ns: int) -> tuple[float, float]:
        """The position sensor's record: it sees what the mirrors do (``actual_deg``), wobble included."""
        if t_ns > self.clock.now_ns():
            raise ValueError(f"{self.name}: measured_at({t_ns}) asks for a time after now ({self.clock.now_ns()} ns)")
        return self.actual_deg(t_ns)

    def _do_wait_settled(self, timeout_s: float) -> GalvoState:
        now_ns = self.clock.now_ns()
        t_settle_ns = int(math.ceil(self._settle_time_s() * 1e9))
        if t_settle_ns - now_ns > timeout_s * 1e9:
            self.clock.sleep_ns(int(timeout_s * 1e9))
            raise DeviceTimeoutError(f"{self.name}: not settled within {timeout_s * 1e3:.3g} ms")
        self.clock.sleep_until_ns(t_settle_ns)
        return self._do_position()

    def _do_status(self) -> dict[str, Any]:
        return {**super()._do_status(), "natural_freq_hz": self.axes[0].natural_freq_hz, "damping": self.axes[0].damping}


# --------------------------------------------------------------------- sensor model
class _Sensor:
    """Exposure, gain, shot and read noise, 8-bit quantisation; noise from a pre-drawn bank (fast)."""

    def __init__(self, width: int, height: int, gain: float, noise_std: float, full_well_e: float,
                 exposure_ref_s: float, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.bank = self.rng.standard_normal((2 * height, 2 * width), dtype=np.float32)
        self.gain, self.noise_std = float(gain), float(noise_std)
        self.e_per_level = float(full_well_e) / 255.0
        self.exposure_ref_s = float(exposure_ref_s)
        self.H, self.W = height, width

    def expose(self, inten: np.ndarray, exposure_s: float) -> np.ndarray:
        level = inten * np.float32(255.0 * self.gain * exposure_s / self.exposure_ref_s)
        if self.noise_std > 0 or self.e_per_level > 0:
            dy, dx = int(self.rng.integers(0, self.H)), int(self.rng.integers(0, self.W))
            n = self.bank[dy:dy + self.H, dx:dx + self.W]
            # Shot noise (variance = signal / electrons per level) plus read noise, in grey levels.
            var = np.maximum(level, 0)
            var *= np.float32(1.0 / self.e_per_level) if self.e_per_level > 0 else np.float32(0)
            var += np.float32(self.noise_std ** 2)
            np.sqrt(var, out=var)
            var *= n
            level += var
        np.clip(level, 0, 255, out=level)
        return level.astype(np.uint8)


class GroundTruthMeta(Mapping):
    """Frame metadata whose ground-truth entries (``labels``, ``boxes``) are computed on first access.

    Ground truth is for training, tests and evaluation; the run loop never reads it,
    so a frame does not pay for it unless someone looks.
    """

    def __init__(self, items: dict[str, Any]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> Any:
        v = self._items[key]
        if callable(v):
            v = self._items[key] = v()
        return v

    def __contains__(self, key) -> bool:
        return key in self._items  # without computing the entry

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"GroundTruthMeta({sorted(self._items)})"

    def __reduce__(self):
        # Pickled and deep-copied as a plain dict with everything computed (lambdas do not pickle).
        return (dict, (dict(self),))


# --------------------------------------------------------------------- frame camera
class SimFrameCameraSettings(DeviceSettings):
    view: Literal["wide", "search"] = "wide"
    width: int = Field(640, gt=0, le=8192)
    height: int = Field(480, gt=0, le=8192)
    hfov_deg: float = Field(64.0, gt=0, lt=170)
    dist: Dist | None = None  # OpenCV k1 k2 p1 p2 k3; None: (-0.1, 0.02, 0, 0, 0) wide, zeros search
    position_mm: Triple | None = None  # fixed cameras; None: (-60, -40, 0)
    rotation_deg: Triple = (0.0, 0.0, 0.0)  # fixed cameras: pan (right +), tilt (up +), roll
    roll_deg: float = 0.0  # search cameras: camera turned about its optical axis behind the mirrors
    exposure_s: float = Field(2e-3, gt=0)
    readout_s: float = Field(1e-3, ge=0)
    frame_rate_hz: float = Field(30.0, gt=0)  # free-running wide cameras; search cameras are triggered by read()
    gain: float = Field(1.0, gt=0)
    noise_std: float = Field(2.0, ge=0)  # read noise, grey levels
    full_well_e: float = Field(10000.0, ge=0)  # shot noise: 255 grey levels = full well
    exposure_ref_s: float = Field(2e-3, gt=0)  # exposure at which scene intensity 1 reaches full scale (gain 1)
    max_blur_samples: int = Field(16, ge=1, le=256)  # sub-exposure renders while the mirror moves
    galvo: str | None = None  # device name of the galvo in front of a search camera
    seed: int | None = None


class SimFrameCamera(FrameCamera):
    """Renders the twin's scene through the camera's true model (see ``render.py``)."""

    Settings = SimFrameCameraSettings

    def __init__(self, name, clock, twin: Twin, view="wide", width=640, height=480, hfov_deg=64.0, dist=None,
                 position_mm=None, rotation_deg=(0.0, 0.0, 0.0), roll_deg=0.0, exposure_s=2e-3, readout_s=1e-3,
                 frame_rate_hz=30.0, gain=1.0, noise_std=2.0, full_well_e=10000.0, exposure_ref_s=2e-3,
                 max_blur_samples=16, galvo=None, seed=None) -> None:
        super().__init__(name, clock, width, height, exposure_s=exposure_s)
        self.twin = twin
        self.view = view
        self.hfov_deg = float(hfov_deg)
        self.dist = tuple(dist) if dist is not None else ((-0.1, 0.02, 0.0, 0.0, 0.0) if view == "wide" else (0.0,) * 5)
        self.position_mm = tuple(position_mm) if position_mm is not None else (-60.0, -40.0, 0.0)
        self.rotation_deg = tuple(rotation_deg)
        self.roll_deg = float(roll_deg)
        self.readout_s = float(readout_s)
        self.frame_period_ns = int(1e9 / frame_rate_hz)
        self.max_blur_samples = int(max_blur_samples)
        self.galvo_name = galvo
        self._seed = _seed(seed, twin, name, "camera")
        self._sensor = _Sensor(self.width, self.height, gain, noise_std, full_well_e, exposure_ref_s, self._seed + 1)
        self._seq = -1
        self._fixed: FixedView | None = None
        self._galvo_view: GalvoView | None = None
        self._gcam: GalvoCamera | None = None
        self._galvo: SimGalvo | None = None
        self.last_render: Render | None = None
        twin.devices[name] = self

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "SimFrameCamera":
        return cls(name=name, clock=context.clock, twin=twin_for(context), **settings.model_dump())

    # ----------------------------------------------------------- true models
    def _galvo_device(self) -> "SimGalvo":
        g = self.twin.galvo_device(self.galvo_name) if self.galvo_name else None
        if g is None or not hasattr(g, "axes"):
            raise ConfigError(
                f"{self.twin.source}: devices.{self.name}.settings.galvo: a search view needs the name of a simulated "
                f"galvo, got {self.galvo_name!r}"
            )
        return g

    def true_galvo_camera(self) -> GalvoCamera:
        if self.view != "search":
            raise ConfigError(f"{self.twin.source}: devices.{self.name}: a wide view has no galvo")
        if self._gcam is None:
            axes = self._galvo_device().axes
            self._gcam = optics.galvo_camera(
                self.width, self.height, self.hfov_deg, self.dist, self.roll_deg,
                (1.0 + axes[0].gain_error, 1.0 + axes[1].gain_error), (axes[0].offset_error_deg, axes[1].offset_error_deg),
                seed=self._seed, error_scale=self.twin.assembly_error_scale)
        return self._gcam

    def nominal_galvo_camera(self) -> GalvoCamera:
        if self.view != "search":
            raise ConfigError(f"{self.twin.source}: devices.{self.name}: a wide view has no galvo")
        return optics.galvo_camera(self.width, self.height, self.hfov_deg, self.dist, self.roll_deg, (1.0, 1.0),
                                   (0.0, 0.0), seed=0, error_scale=0.0)

    def true_camera_model(self) -> tuple[PinholeCamera, np.ndarray]:
        if self.view != "wide":
            raise ConfigError(f"{self.twin.source}: devices.{self.name}: a search view is not a fixed camera")
        return optics.fixed_camera(self.width, self.height, self.hfov_deg, self.dist, self.position_mm, self.rotation_deg,
                                   seed=self._seed, error_scale=self.twin.assembly_error_scale)

    # --------------------------------------------------------------- device
    def _do_open(self) -> None:
        if self.view == "search":
            self._galvo = self._galvo_device()
            if self._galvo_view is None:
                self._galvo_view = GalvoView(self.true_galvo_camera())
        elif self._fixed is None:
            self._fixed = FixedView(*self.true_camera_model())

    def render(self, t_start_ns: int, exposure_s: float | None = None) -> Render:
        """Noise-free render of an exposure starting at ``t_start_ns`` (motion blur for moving mirrors)."""
        exp_ns = int((self._exposure_s if exposure_s is None else exposure_s) * 1e9)
        scene, board = self.twin.scene, self.twin.board
        if self.view == "wide":
            if self._fixed is None:
                self._fixed = FixedView(*self.true_camera_model())
            return self._fixed.render(scene, (t_start_ns + exp_ns // 2) * 1e-9, board=board, twin=self.twin)
        if self._galvo_view is None:
            self._galvo = self._galvo_device()
            self._galvo_view = GalvoView(self.true_galvo_camera())
        g = self._galvo
        a0 = g.actual_deg(t_start_ns)
        a1 = g.actual_deg(t_start_ns + exp_ns)
        am = g.actual_deg(t_start_ns + exp_ns // 2)
        # Optical sweep during the exposure, in pixels: mirrors deflect the view by twice their angle.
        sweep_deg = 2.0 * max(abs(a1[0] - a0[0]) + abs(am[0] - a0[0]), abs(a1[1] - a0[1]) + abs(am[1] - a0[1]))
        # Sub-pixel sweeps (a settled mirror's last ringing) blur nothing visible: one render.
        px = self._galvo_view.pitch_deg
        n = int(min(self.max_blur_samples, 1 + math.ceil(sweep_deg / (0.5 * px)))) if sweep_deg >= px else 1
        if n <= 1:
            return self._galvo_view.render(scene, am[0], am[1], (t_start_ns + exp_ns // 2) * 1e-9, board=board, twin=self.twin)
        acc = None
        mid = None
        for k in range(n):
            t_k = t_start_ns + int((k + 0.5) * exp_ns / n)
            ax, ay = g.actual_deg(t_k)
            r = self._galvo_view.render(scene, ax, ay, t_k * 1e-9, board=board, twin=self.twin, with_boxes=(k == n // 2))
            acc = r.intensity if acc is None else acc + r.intensity
            if k == n // 2:
                mid = r
        return Render(acc / np.float32(n), lambda: mid.labels, lambda: mid.boxes)

    def _do_read(self, timeout_s: float) -> Frame:
        exp_ns = int(self._exposure_s * 1e9)
        ro_ns = int(self.readout_s * 1e9)
        if self.view == "search":
            start = self.clock.now_ns()
            seq = self._seq + 1
        else:
            now = self.clock.now_ns()
            latest = (now - exp_ns - ro_ns) // self.frame_period_ns
            seq = max(self._seq + 1, int(latest))
            if seq > self._seq + 1:
                self.frames_dropped += seq - self._seq - 1
            start = seq * self.frame_period_ns
        ready = start + exp_ns + ro_ns
        if ready - self.clock.now_ns() > timeout_s * 1e9:
            self.clock.sleep_ns(int(timeout_s * 1e9))
            raise DeviceTimeoutError(f"{self.name}: no frame within {timeout_s:g} s")
        self.clock.sleep_until_ns(ready)
        mid = start + exp_ns // 2
        r = self.render(start)
        self.last_render = r
        image = self._sensor.expose(r.intensity, self._exposure_s)
        self._seq = seq
        meta: dict[str, Any] = {"labels": lambda: r.labels, "boxes": lambda: r.boxes, "view": self.view}
        if self.view == "search":
            meta["mirror_deg"] = self._galvo.actual_deg(mid)
        return Frame(image, mid, self._exposure_s, seq, self.name, meta=GroundTruthMeta(meta))

    def _do_status(self) -> dict[str, Any]:
        return {**super()._do_status(), "view": self.view, "hfov_deg": self.hfov_deg}

    # Injected faults (foveate.hardware.sim.faults): the camera's symptoms, as a real one would show them.
    def open(self) -> "SimFrameCamera":
        if self.twin.faults:
            from foveate.hardware.sim.faults import camera_open

            camera_open(self)
        return super().open()

    def read(self, timeout_s: float = 1.0) -> Frame:
        if self.twin.faults:
            from foveate.hardware.sim.faults import camera_read

            return camera_read(self, timeout_s, super().read)
        return super().read(timeout_s)


# --------------------------------------------------------------------- event camera
class SimEventCameraSettings(DeviceSettings):
    width: int = Field(320, gt=0, le=4096)
    height: int = Field(240, gt=0, le=4096)
    hfov_deg: float = Field(64.0, gt=0, lt=170)
    dist: Dist = (-0.1, 0.02, 0.0, 0.0, 0.0)
    position_mm: Triple = (60.0, -40.0, 0.0)
    rotation_deg: Triple = (0.0, 0.0, 0.0)
    contrast_threshold: float = Field(0.2, gt=0)
    threshold_sigma: float = Field(0.03, ge=0)  # per-pixel threshold mismatch (1 sigma)
    refractory_us: float = Field(100.0, ge=0)
    noise_rate_hz: float = Field(0.1, ge=0)  # background activity per pixel
    noise_on_frac: float = Field(0.8, ge=0, le=1)
    log_eps: float = Field(0.02, gt=0)  # log(I + eps): dark-current floor
    substep_us: int = Field(4000, gt=0, le=65535)  # longest internal frame interval
    min_substep_us: int = Field(50, gt=0, le=65535)  # shortest
    max_px_per_substep: float = Field(0.25, gt=0, le=4)  # image motion allowed between internal frames
    max_substeps: int = Field(20000, gt=0)  # per read; beyond it intervals stretch
    vibration_deg: float = Field(0.0, ge=0)  # ego-motion: pan/tilt wobble amplitude
    vibration_hz: float = Field(12.0, gt=0)
    # 0: emulate inside each read (internal frames tile the read's window). > 0: a worker thread emulates
    # continuously, up to this far past the latest read, like a sensor streaming beside the host; internal
    # frames then follow the motion only, not the read times (deterministic whatever the thread timing, unless
    # reads fall more than max_substeps internal frames behind, when intervals stretch as they do inline).
    stream_ahead_s: float = Field(0.0, ge=0, le=10)
    seed: int | None = None


class SimEventCamera(EventCamera):
    """DVS emulation (``events.DvsArray``) on renders of a fixed camera at a high internal rate.

    Internal frames come as often as needed for the image to move at most
    ``max_px_per_substep`` between two of them (targets and vibration), at least
    every ``substep_us``: timestamps are as good as the time the image takes to
    move that far, and a still scene costs little; optional
    ``vibration_deg`` turns the camera slightly (two incommensurate sines) so
    static edges fire too.

    ``stream_ahead_s > 0`` moves the emulation out of ``read`` into a worker
    thread that runs ahead of the reads (the DVS kernels release the GIL, so
    on a second core the event camera costs the reading loop almost nothing);
    a read returns the events before its time and keeps the rest.
    """

    Settings = SimEventCameraSettings

    def __init__(self, name, clock, twin: Twin, width=320, height=240, hfov_deg=64.0, dist=(-0.1, 0.02, 0.0, 0.0, 0.0),
                 position_mm=(60.0, -40.0, 0.0), rotation_deg=(0.0, 0.0, 0.0), contrast_threshold=0.2,
                 threshold_sigma=0.03, refractory_us=100.0, noise_rate_hz=0.1, noise_on_frac=0.8, log_eps=0.02,
                 substep_us=4000, min_substep_us=50, max_px_per_substep=0.25, max_substeps=20000, vibration_deg=0.0,
                 vibration_hz=12.0, stream_ahead_s=0.0, seed=None) -> None:
        super().__init__(name, clock, width, height)
        self.twin = twin
        self.hfov_deg = float(hfov_deg)
        self.dist = tuple(dist)
        self.position_mm = tuple(position_mm)
        self.rotation_deg = tuple(rotation_deg)
        self.log_eps = float(log_eps)
        self.substep_us = int(substep_us)
        self.min_substep_us = int(min(min_substep_us, substep_us))
        self.max_px_per_substep = float(max_px_per_substep)
        self.max_substeps = int(max_substeps)
        self.vibration_deg = float(vibration_deg)
        self.vibration_hz = float(vibration_hz)
        self._seed = _seed(seed, twin, name, "events")
        self.dvs = DvsArray(self.sensor_size[0], self.sensor_size[1], contrast_threshold, threshold_sigma,
                            refractory_us, noise_rate_hz, noise_on_frac, seed=self._seed)
        self._phase = np.random.default_rng(self._seed + 7).uniform(0, 2 * math.pi, 2)
        self._view: FixedView | None = None
        self._log_static: tuple | None = None
        self.stream_ahead_us = int(round(float(stream_ahead_s) * 1e6))
        self._stream: _EventStream | None = None
        twin.devices[name] = self

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "SimEventCamera":
        return cls(name=name, clock=context.clock, twin=twin_for(context), **settings.model_dump())

    def true_camera_model(self) -> tuple[PinholeCamera, np.ndarray]:
        return optics.fixed_camera(self.sensor_size[0], self.sensor_size[1], self.hfov_deg, self.dist, self.position_mm,
                                   self.rotation_deg, seed=self._seed, error_scale=self.twin.assembly_error_scale)

    @property
    def view(self) -> FixedView:
        if self._view is None:
            self._view = FixedView(*self.true_camera_model())
        return self._view

    def vibration_offset_deg(self, t_us: int) -> tuple[float, float]:
        """Pan/tilt wobble of the camera at ``t_us`` (degrees)."""
        if self.vibration_deg == 0.0:
            return (0.0, 0.0)
        w = 2 * math.pi * self.vibration_hz * t_us * 1e-6
        a = self.vibration_deg
        return (a * math.sin(w + self._phase[0]), a * math.sin(1.618 * w + self._phase[1]))

    def render_at(self, t_us: int, with_labels: bool = True) -> Render:
        """Noise-free render of the sensor's view at ``t_us`` (intensity, labels; ground truth)."""
        return self.view.render(self.twin.scene, t_us * 1e-6, board=self.twin.board, twin=self.twin,
                                offset_deg=self.vibration_offset_deg(t_us), with_boxes=False, with_labels=with_labels)

    def labels_at(self, t_us: int) -> np.ndarray:
        """Ground-truth class of every sensor pixel (H, W) uint8 for the event window ending at ``t_us``."""
        return self.render_at(t_us).labels

    def _log_frame(self, t_us: int) -> np.ndarray:
        eps = np.float32(self.log_eps)
        scene = self.twin.scene
        if self.vibration_deg == 0.0 and self.twin.board is None and isinstance(scene, PanoramaScene):
            # Still camera: the log of the static layer is computed once; only target windows change.
            if self._log_static is None or self._log_static[0] is not scene:
                self._log_static = (scene, np.log(self.view._static_layer(scene)[0] + eps))
            windows: list = []
            r = self.view.render(scene, t_us * 1e-6, twin=self.twin, with_boxes=False, with_labels=False,
                                 windows_out=windows)
            L = self._log_static[1].copy()
            for rs, cs in windows:
                L[rs, cs] = np.log(r.intensity[rs, cs] + eps)
            return L
        return np.log(self.render_at(t_us, with_labels=False).intensity + eps)

    def _do_open(self) -> None:
        warm_kernels()
        self._cursor_us = self.clock.now_us()
        self.dvs.reset(self._log_frame(self._cursor_us), self._cursor_us)
        if self.stream_ahead_us > 0:
            self._stream = _EventStream(self, self._cursor_us)

    def _do_close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    def _substep_us(self, t_us: int) -> int:
        """Internal frame interval at ``t_us``: the image moves at most ``max_px_per_substep`` in it."""
        v = self._motion_px_per_us(t_us)
        return self.substep_us if v <= 0 else int(np.clip(self.max_px_per_substep / v, self.min_substep_us, self.substep_us))

    def _motion_px_per_us(self, t_us: int) -> float:
        """Fastest image motion now (targets and vibration), pixels per microsecond."""
        speed = 0.0
        centres = getattr(self.twin.scene, "target_centres_deg", None)
        if centres is not None:
            az_a, el_a, ok_a = centres(t_us * 1e-6)
            az_b, el_b, ok_b = centres(t_us * 1e-6 + 0.01)
            both = ok_a & ok_b
            if both.any():
                speed = float(np.max(np.hypot(az_b - az_a, el_b - el_a)[both])) / 0.01
        speed += 2 * math.pi * self.vibration_hz * 1.618 * self.vibration_deg * math.sqrt(2)
        return speed * 1e-6 / self.view.pitch_deg

    def _do_read(self, timeout_s: float) -> EventPacket:
        t0, t1 = self._cursor_us, self.clock.now_us()
        if t1 <= t0:
            return EventPacket(np.zeros(0, EVENT_DTYPE), self.sensor_size, t0, t0, self.name)
        if self._stream is not None:
            events = self._stream.take(t1)
            self._cursor_us = t1
            return EventPacket(events, self.sensor_size, t0, t1, self.name)
        dt = self._substep_us(t0)
        n_sub = min(self.max_substeps, max(1, math.ceil((t1 - t0) / dt)))
        if (t1 - t0) / n_sub > 65535:
            n_sub = math.ceil((t1 - t0) / 65535)
        edges = np.linspace(t0, t1, n_sub + 1).round().astype(np.int64)
        chunks = []
        for ta, tb in zip(edges[:-1], edges[1:]):
            if tb <= ta:
                continue
            ev = self.dvs.step(self._log_frame(int(tb)), int(ta), int(tb))
            if ev.size:
                chunks.append(ev)
        events = np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE)
        self._cursor_us = t1
        return EventPacket(events, self.sensor_size, t0, t1, self.name)


    def _do_status(self) -> dict[str, Any]:
        return {**super()._do_status(), "contrast_threshold": float(np.mean(self.dvs.c_on)), "vibration_deg": self.vibration_deg}

    def read(self, timeout_s: float = 1.0) -> EventPacket:
        packet = super().read(timeout_s)
        if self.twin.faults:  # injected gaps and bursts (foveate.hardware.sim.faults)
            from foveate.hardware.sim.faults import event_faults

            packet = event_faults(self, packet)
        return packet


class _EventStream:
    """The worker of a streaming ``SimEventCamera``: internal frames from the open time on, one after the
    other (each ``_substep_us`` long, at most ``max_substeps`` behind the target), events buffered until read."""

    def __init__(self, cam: SimEventCamera, t0_us: int) -> None:
        import threading

        self.cam = cam
        self.emulated_us = t0_us  # events before this time are in the buffer
        self.target_us = t0_us + cam.stream_ahead_us
        self.chunks: list[np.ndarray] = []
        self.error: BaseException | None = None
        self.stopped = False
        self.cv = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=f"sim-events-{cam.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        cam = self.cam
        try:
            while True:
                with self.cv:
                    while self.emulated_us >= self.target_us and not self.stopped:
                        self.cv.wait()
                    if self.stopped:
                        return
                    ta, behind = self.emulated_us, self.target_us - self.emulated_us
                # A long backlog (a read long after open on a real clock) stretches the intervals.
                dt = min(max(cam._substep_us(ta), -(-behind // cam.max_substeps)), 65535)
                ev = cam.dvs.step(cam._log_frame(ta + dt), ta, ta + dt)
                with self.cv:
                    if ev.size:
                        self.chunks.append(ev)
                    self.emulated_us = ta + dt
                    self.cv.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            with self.cv:
                self.error = exc
                self.cv.notify_all()

    def take(self, t_us: int) -> np.ndarray:
        """Events before ``t_us`` (waits for the worker to get there); asks it to go on ``stream_ahead_s`` further."""
        with self.cv:
            self.target_us = max(self.target_us, t_us + self.cam.stream_ahead_us)
            self.cv.notify_all()
            while self.emulated_us < t_us and self.error is None:
                self.cv.wait()
            if self.error is not None:
                raise self.error
            chunks, self.chunks = self.chunks, []
        events = np.concatenate(chunks) if len(chunks) > 1 else (chunks[0] if chunks else np.zeros(0, EVENT_DTYPE))
        k = int(np.searchsorted(events["t"], t_us, side="left"))
        if k < len(events):
            with self.cv:
                self.chunks.insert(0, events[k:])
        return events[:k]

    def stop(self) -> None:
        with self.cv:
            self.stopped = True
            self.cv.notify_all()
        self.thread.join(timeout=10.0)


# ------------------------------------------------------------------------- laser
class SimLineLaserSettings(DeviceSettings):
    power_frac: float = 1.0


class SimLineLaser(LineLaser):
    """A laser whose state the twin's stripe renderer reads (``is_on``, ``power_frac``, ``switch_log``)."""

    Settings = SimLineLaserSettings

    def __init__(self, name, clock, power_frac=1.0, twin: Twin | None = None) -> None:
        super().__init__(name, clock, power_frac=power_frac)
        self.switch_log: list[tuple[int, bool, float]] = []
        if twin is not None:
            twin.devices[name] = self

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "SimLineLaser":
        return cls(name=name, clock=context.clock, twin=twin_for(context), **settings.model_dump())

    def _do_set_output(self, on: bool, power_frac: float) -> None:
        self.switch_log.append((self.clock.now_ns(), on, power_frac))

    def _do_status(self) -> dict[str, Any]:
        return {**super()._do_status(), "switches": len(self.switch_log)}
