"""Simulated backends of every device interface, bound to one twin and clock."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from foveate.drivers.device import DeviceSettings
from foveate.drivers.event_camera import EventCamera
from foveate.drivers.frame_camera import FrameCamera
from foveate.drivers.galvo import Galvo
from foveate.drivers.line_laser import LineLaser
from foveate.hardware.sim.galvo_dynamics import SecondOrderAxis
from foveate.hardware.sim.twin import Twin, twin_for
from foveate.system.context import RigContext
from foveate.system.errors import ConfigError, DeviceTimeoutError
from foveate.system.types import EVENT_DTYPE, EventPacket, Frame, GalvoState


def pixel_angles(width: int, height: int, hfov_deg: float, centre_deg=(0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Equiangular pixel-centre directions: az (W,) increasing, el (H,) decreasing (row 0 at the top)."""
    step = hfov_deg / width
    az = centre_deg[0] + (np.arange(width) - (width - 1) / 2) * step
    el = centre_deg[1] - (np.arange(height) - (height - 1) / 2) * step
    return az, el


# ---------------------------------------------------------------------------- galvo
class SimGalvoSettings(DeviceSettings):
    limits_deg: tuple[tuple[float, float], tuple[float, float]] = ((-15.0, 15.0), (-11.0, 11.0))
    park_deg: tuple[float, float] = (0.0, 0.0)
    natural_freq_hz: float = 1800.0
    damping: float = 0.7
    settle_tol_deg: float = 0.002
    noise_deg: float = 0.00086  # ~15 µrad RMS position noise
    seed: int = 1


class SimGalvo(Galvo):
    """Two second-order axes on the injected clock; ``wait_settled`` sleeps exactly until in position."""

    Settings = SimGalvoSettings

    def __init__(self, name, clock, limits_deg, park_deg, natural_freq_hz=1800.0, damping=0.7,
                 settle_tol_deg=0.002, noise_deg=0.00086, seed=1, twin: Twin | None = None) -> None:
        super().__init__(name, clock, limits_deg=limits_deg, park_deg=park_deg)
        self.axes = (
            SecondOrderAxis(natural_freq_hz, damping, self.park_deg[0]),
            SecondOrderAxis(natural_freq_hz, damping, self.park_deg[1]),
        )
        self.settle_tol_deg = float(settle_tol_deg)
        self.noise_deg = float(noise_deg)
        self._rng = np.random.default_rng(seed)
        if twin is not None:
            twin.devices[name] = self

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "SimGalvo":
        return cls(name=name, clock=context.clock, twin=twin_for(context), **settings.model_dump())

    def optical_angles_deg(self, t_ns: int | None = None) -> tuple[float, float]:
        """True (noise-free) mechanical angles at ``t_ns`` (default: now)."""
        t_s = (self.clock.now_ns() if t_ns is None else t_ns) * 1e-9
        return self.axes[0].state(t_s)[0], self.axes[1].state(t_s)[0]

    def _settle_time_s(self) -> float:
        return max(ax.settle_time_s(self.settle_tol_deg) for ax in self.axes)

    def _do_move_to(self, theta_x_deg: float, theta_y_deg: float) -> None:
        t_s = self.clock.now_ns() * 1e-9
        self.axes[0].command(theta_x_deg, t_s)
        self.axes[1].command(theta_y_deg, t_s)

    def _do_position(self) -> GalvoState:
        t_ns = self.clock.now_ns()
        x, y = self.optical_angles_deg(t_ns)
        nx, ny = self._rng.normal(0.0, self.noise_deg, 2) if self.noise_deg > 0 else (0.0, 0.0)
        settled = t_ns * 1e-9 >= self._settle_time_s()
        cmd = (self.axes[0].target_deg, self.axes[1].target_deg)
        return GalvoState(cmd, (x + nx, y + ny), settled, t_ns)

    def _do_wait_settled(self, timeout_s: float) -> GalvoState:
        now_ns = self.clock.now_ns()
        t_settle_ns = int(math.ceil(self._settle_time_s() * 1e9))
        if t_settle_ns - now_ns > timeout_s * 1e9:
            self.clock.sleep_ns(int(timeout_s * 1e9))
            raise DeviceTimeoutError(f"{self.name}: not settled within {timeout_s * 1e3:.3g} ms")
        self.clock.sleep_until_ns(t_settle_ns)
        return self._do_position()


# --------------------------------------------------------------------- frame camera
class SimFrameCameraSettings(DeviceSettings):
    view: Literal["wide", "search"] = "wide"
    width: int = 640
    height: int = 480
    hfov_deg: float = 64.0
    exposure_s: float = 2e-3
    readout_s: float = 1e-3
    frame_rate_hz: float = 30.0  # free-running wide cameras; search cameras are triggered by read()
    gain: float = 1.0
    noise_std: float = 2.0  # grey levels
    galvo: str | None = None  # device name of the galvo in front of a search camera
    seed: int = 2


class SimFrameCamera(FrameCamera):
    """Renders the twin's world: the whole panorama (``view: wide``) or the galvo-steered narrow view."""

    Settings = SimFrameCameraSettings

    def __init__(self, name, clock, twin: Twin, view="wide", width=640, height=480, hfov_deg=64.0,
                 exposure_s=2e-3, readout_s=1e-3, frame_rate_hz=30.0, gain=1.0, noise_std=2.0,
                 galvo=None, seed=2) -> None:
        super().__init__(name, clock, width, height, exposure_s=exposure_s)
        self.twin = twin
        self.view = view
        self.hfov_deg = float(hfov_deg)
        self.readout_s = float(readout_s)
        self.frame_period_ns = int(1e9 / frame_rate_hz)
        self.gain = float(gain)
        self.noise_std = float(noise_std)
        self.galvo_name = galvo
        self._rng = np.random.default_rng(seed)
        self._seq = -1
        twin.devices[name] = self

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "SimFrameCamera":
        return cls(name=name, clock=context.clock, twin=twin_for(context), **settings.model_dump())

    def _do_open(self) -> None:
        if self.view == "search":
            g = self.twin.devices.get(self.galvo_name) if self.galvo_name else None
            if not isinstance(g, SimGalvo):
                raise ConfigError(
                    f"devices.{self.name}.settings.galvo: a search view needs the name of a sim galvo, "
                    f"got {self.galvo_name!r}"
                )
            self._galvo = g

    def view_centre_deg(self, t_ns: int) -> tuple[float, float]:
        """Line of sight (az, el) in degrees: a mirror turned by a deflects the view by 2a."""
        if self.view == "wide":
            return (0.0, 0.0)
        tx, ty = self._galvo.optical_angles_deg(t_ns)
        return (2.0 * tx, 2.0 * ty)

    def render(self, t_ns: int) -> tuple[np.ndarray, np.ndarray]:
        az, el = pixel_angles(self.width, self.height, self.hfov_deg, self.view_centre_deg(t_ns))
        return self.twin.world.render(az, el, t_ns * 1e-9)

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
        inten, labels = self.render(mid)
        level = inten * (255.0 * self.gain * self._exposure_s / 2e-3)
        if self.noise_std > 0:
            level = level + self._rng.normal(0.0, self.noise_std, level.shape)
        image = np.clip(level, 0, 255).astype(np.uint8)
        self._seq = seq
        return Frame(image, mid, self._exposure_s, seq, self.name,
                     meta={"labels": labels, "view_centre_deg": self.view_centre_deg(mid)})


# --------------------------------------------------------------------- event camera
class SimEventCameraSettings(DeviceSettings):
    width: int = 320
    height: int = 240
    hfov_deg: float = 64.0
    contrast_threshold: float = 0.2
    substep_us: int = 1000
    max_substeps: int = 200


class SimEventCamera(EventCamera):
    """DVS emulation: per-pixel memorised log intensity, events per threshold crossing, interpolated times."""

    Settings = SimEventCameraSettings

    def __init__(self, name, clock, twin: Twin, width=320, height=240, hfov_deg=64.0,
                 contrast_threshold=0.2, substep_us=1000, max_substeps=200) -> None:
        super().__init__(name, clock, width, height)
        self.twin = twin
        self.contrast_threshold = float(contrast_threshold)
        self.substep_us = int(substep_us)
        self.max_substeps = int(max_substeps)
        self._az, self._el = pixel_angles(width, height, hfov_deg)
        twin.devices[name] = self

    @classmethod
    def from_config(cls, name: str, settings: DeviceSettings, context: RigContext) -> "SimEventCamera":
        return cls(name=name, clock=context.clock, twin=twin_for(context), **settings.model_dump())

    def _log_intensity(self, t_us: int) -> np.ndarray:
        inten, _ = self.twin.world.render(self._az, self._el, t_us * 1e-6)
        return np.log(inten + 0.02)

    def _do_open(self) -> None:
        self._cursor_us = self.clock.now_us()
        self._ref = self._log_intensity(self._cursor_us)

    def _do_read(self, timeout_s: float) -> EventPacket:
        t0, t1 = self._cursor_us, self.clock.now_us()
        if t1 <= t0:
            return EventPacket(np.zeros(0, EVENT_DTYPE), self.sensor_size, t0, t0, self.name)
        n_sub = min(self.max_substeps, max(1, math.ceil((t1 - t0) / self.substep_us)))
        edges = np.linspace(t0, t1, n_sub + 1)
        chunks = []
        C = self.contrast_threshold
        for ta, tb in zip(edges[:-1], edges[1:]):
            L = self._log_intensity(int(tb))
            D = L - self._ref
            n = np.floor(np.abs(D) / C).astype(np.int64)
            ys, xs = np.nonzero(n)
            if len(ys) == 0:
                continue
            counts = n[ys, xs]
            d = np.abs(D[ys, xs])
            pol = (D[ys, xs] > 0).astype(np.uint8)
            idx = np.repeat(np.arange(len(ys)), counts)
            k = np.arange(idx.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts) + 1
            frac = k * C / d[idx]
            ev = np.empty(idx.shape[0], EVENT_DTYPE)
            ev["x"] = xs[idx]
            ev["y"] = ys[idx]
            ev["t"] = np.minimum(ta + frac * (tb - ta), tb - 1).astype(np.int64)
            ev["p"] = pol[idx]
            chunks.append(ev)
            self._ref[ys, xs] += np.where(pol == 1, 1.0, -1.0) * counts * C
        events = np.concatenate(chunks) if chunks else np.zeros(0, EVENT_DTYPE)
        events = events[np.argsort(events["t"], kind="stable")]
        self._cursor_us = t1
        return EventPacket(events, self.sensor_size, t0, t1, self.name)


# ------------------------------------------------------------------------- laser
class SimLineLaserSettings(DeviceSettings):
    power_frac: float = 1.0


class SimLineLaser(LineLaser):
    """A laser whose state the twin's stripe renderer reads."""

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
