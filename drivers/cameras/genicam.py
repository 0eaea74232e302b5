"""Frame camera ``genicam``: GenICam cameras (GigE Vision, USB3 Vision) through the ``harvesters`` package.

``harvesters`` and a vendor's GenTL producer (``.cti`` file) are needed only
when this backend is used; it is imported at ``open`` and a missing package
gives ``BackendUnavailableError`` naming it. Standard SFNC features are set
from the rig file: ``PixelFormat``, ``Width``/``Height``/``OffsetX``/``OffsetY``
(``roi``), ``ExposureAuto``/``ExposureTime``, ``GainAuto``/``Gain``,
``AcquisitionFrameRate`` and the ``FrameStart`` trigger (``trigger: hardware``
for a search camera fired by the galvo controller's trigger-out on ``Line0``).

Each buffer's device timestamp (``Buffer.timestamp_ns``, latched at the start
of exposure on SFNC cameras) is mapped to the host clock by a ``ClockSync``
over the arrival times (``foveate.drivers.cameras.timing``), so frames are
stamped at the middle of their exposure without the transfer jitter.
"""

from __future__ import annotations

import glob
import os
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from foveate.drivers.cameras.optional import require
from foveate.drivers.cameras.timing import FrameTiming
from foveate.drivers.device import DeviceSettings
from foveate.drivers.frame_camera import FrameCamera
from foveate.system.clock import Clock
from foveate.system.context import RigContext
from foveate.system.errors import DeviceError, DeviceTimeoutError
from foveate.system.types import Frame


class DeviceSelector(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    serial_number: str | None = None
    model: str | None = None
    user_defined_name: str | None = None
    index: int | None = Field(None, ge=0)


class GenICamSettings(DeviceSettings):
    cti: list[str] = Field(default_factory=list, description="GenTL producer files; default: GENICAM_GENTL64_PATH")
    device: DeviceSelector = DeviceSelector()
    pixel_format: str | None = "Mono8"
    roi: tuple[int, int, int, int] | None = None  # x, y, width, height on the sensor
    exposure_s: float = Field(0.001, gt=0)
    gain_db: float | None = None
    frame_rate_hz: float | None = Field(None, gt=0)
    trigger: Literal["off", "hardware", "software"] = "off"
    trigger_source: str = "Line0"
    trigger_activation: Literal["RisingEdge", "FallingEdge"] = "RisingEdge"
    latency_s: float = Field(0.0003, ge=0, description="readout + transfer after the end of exposure")


def default_cti_files() -> list[str]:
    """GenTL producers found through the standard GENICAM_GENTL64_PATH variable."""
    out: list[str] = []
    for folder in os.environ.get("GENICAM_GENTL64_PATH", "").split(os.pathsep):
        if folder:
            out += sorted(glob.glob(os.path.join(folder, "*.cti")))
    return out


class GenICamCamera(FrameCamera):
    """A GenICam camera through harvesters; see the module docstring."""

    Settings = GenICamSettings

    def __init__(self, name: str, clock: Clock, cti=(), device: DeviceSelector | dict | None = None,
                 pixel_format: str | None = "Mono8", roi=None, exposure_s: float = 0.001, gain_db: float | None = None,
                 frame_rate_hz: float | None = None, trigger: str = "off", trigger_source: str = "Line0",
                 trigger_activation: str = "RisingEdge", latency_s: float = 0.0003) -> None:
        w, h = (roi[2], roi[3]) if roi else (1, 1)
        super().__init__(name, clock, w, h, exposure_s=exposure_s)
        self.cti = list(cti)
        self.device = DeviceSelector.model_validate(device or {})
        self.pixel_format = pixel_format
        self.roi = tuple(roi) if roi else None
        self.gain_db = gain_db
        self.frame_rate_hz = frame_rate_hz
        self.trigger = trigger
        self.trigger_source = trigger_source
        self.trigger_activation = trigger_activation
        self.latency_s = latency_s
        self._harvester = None
        self._ia = None
        self._seq = -1

    @classmethod
    def from_config(cls, name: str, settings: GenICamSettings, context: RigContext) -> "GenICamCamera":
        s = settings.model_dump()
        s["cti"] = [str(context.resolve(p)) for p in s["cti"]]
        return cls(name=name, clock=context.clock, **s)

    # ------------------------------------------------------------------ node map helpers
    def _set(self, node: str, value) -> None:
        nm = self._ia.remote_device.node_map
        try:
            getattr(nm, node).value = value
        except Exception as exc:  # noqa: BLE001 - GenApi raises its own exception types
            raise DeviceError(f"{self.name}: cannot set {node} = {value!r}: {exc}") from None

    def _get(self, node: str, default=None):
        try:
            return getattr(self._ia.remote_device.node_map, node).value
        except Exception:  # noqa: BLE001
            return default

    # ------------------------------------------------------------------ lifecycle
    def _do_open(self) -> None:
        core = require("harvesters.core", "harvesters", "genicam",
                       hint="you also need your camera vendor's GenTL producer (.cti file)")
        files = self.cti or default_cti_files()
        if not files:
            raise DeviceError(f"{self.name}: no GenTL producer: give settings.cti (a .cti file from the camera "
                              "vendor) or set GENICAM_GENTL64_PATH")
        h = core.Harvester()
        for f in files:
            if not os.path.isfile(f):
                raise DeviceError(f"{self.name}: cti: file not found: {f}")
            h.add_file(f)
        h.update()
        infos = list(h.device_info_list)
        if not infos:
            h.reset()
            raise DeviceError(f"{self.name}: no GenICam camera found through {', '.join(files)}")
        key: Any = {k: v for k, v in self.device.model_dump().items() if v is not None and k != "index"}
        if not key:
            key = self.device.index or 0
        try:
            ia = h.create(key)
        except Exception as exc:  # noqa: BLE001
            found = "; ".join(f"{getattr(i, 'model', '?')} #{getattr(i, 'serial_number', '?')}" for i in infos)
            h.reset()
            raise DeviceError(f"{self.name}: no camera matches device {key!r} (found: {found}): {exc}") from None
        self._harvester, self._ia = h, ia
        try:
            self._configure()
            ia.start()
        except BaseException:
            self._do_close()
            raise
        self._seq = -1

    def _configure(self) -> None:
        if self.pixel_format:
            self._set("PixelFormat", self.pixel_format)
        if self.roi:
            x, y, w, h = self.roi
            self._set("OffsetX", 0)
            self._set("OffsetY", 0)
            self._set("Width", w)
            self._set("Height", h)
            self._set("OffsetX", x)
            self._set("OffsetY", y)
        self.width, self.height = int(self._get("Width")), int(self._get("Height"))
        self._set("ExposureAuto", "Off")
        self._set("ExposureTime", self._exposure_s * 1e6)
        nm = self._ia.remote_device.node_map
        try:
            lo, hi = nm.ExposureTime.min, nm.ExposureTime.max
        except Exception:  # noqa: BLE001 - keep the interface's default range
            lo = hi = None
        if lo is not None and hi is not None:
            self.exposure_range_s = (float(lo) * 1e-6, float(hi) * 1e-6)
        if self.gain_db is not None:
            self._set("GainAuto", "Off")
            self._set("Gain", self.gain_db)
        self._set("TriggerSelector", "FrameStart")
        if self.trigger == "off":
            self._set("TriggerMode", "Off")
            if self.frame_rate_hz:
                self._set("AcquisitionFrameRateEnable", True)
                self._set("AcquisitionFrameRate", self.frame_rate_hz)
        else:
            self._set("TriggerMode", "On")
            self._set("TriggerSource", "Software" if self.trigger == "software" else self.trigger_source)
            if self.trigger == "hardware":
                self._set("TriggerActivation", self.trigger_activation)
        period = 1.0 / self.frame_rate_hz if (self.frame_rate_hz and self.trigger == "off") else None
        self.timing = FrameTiming(self.clock, latency_s=self.latency_s, device_stamp="exposure_start",
                                  period_s=period)

    def _do_close(self) -> None:
        ia, h = self._ia, self._harvester
        self._ia = self._harvester = None
        if ia is not None:
            try:
                ia.stop()
            finally:
                ia.destroy()
        if h is not None:
            h.reset()

    def _do_set_exposure(self, exposure_s: float) -> None:
        self._set("ExposureTime", exposure_s * 1e6)

    def software_trigger(self) -> None:
        """Fire one frame (``trigger: software``)."""
        self._check_open()
        try:
            self._ia.remote_device.node_map.TriggerSoftware.execute()
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(f"{self.name}: TriggerSoftware failed: {exc}") from None

    # ------------------------------------------------------------------ reading
    def _do_read(self, timeout_s: float) -> Frame:
        try:
            with self._ia.fetch(timeout=timeout_s) as buf:
                comp = buf.payload.components[0]
                h, w = int(comp.height), int(comp.width)
                data = np.asarray(comp.data)
                channels = data.size // (h * w)
                image = data.reshape((h, w, channels) if channels > 1 else (h, w)).copy()
                device_ns = int(buf.timestamp_ns)
        except Exception as exc:  # noqa: BLE001 - genicam.gentl.TimeoutException and friends
            if "Timeout" in type(exc).__name__:
                raise DeviceTimeoutError(f"{self.name}: no frame within {timeout_s:g} s") from None
            raise
        arrival = self.clock.now_ns()
        mid = self.timing.stamp(arrival, self._exposure_s, device_ns)
        self.frames_dropped += self.timing.gap(mid)
        self._seq += 1
        return Frame(image, mid, self._exposure_s, self._seq, self.name, device_t_ns=device_ns,
                     meta={"arrival_ns": arrival})

    def _do_status(self) -> dict[str, Any]:
        out = super()._do_status()
        out.update({"model": str(self._get("DeviceModelName", "?")), "trigger": self.trigger,
                    "sync": self.timing.sync.summary()})
        return out
