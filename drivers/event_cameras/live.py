"""Live event cameras: iniVation through dv-processing (``dv``) and Prophesee through OpenEB (``openeb``).

Both vendor packages are imported only when a camera is opened; without them
``open`` raises ``BackendUnavailableError`` naming the package. Events come
out in the project's dtype on the host clock, in packets that tile time
(``foveate.drivers.event_cameras.stream``); external-trigger rising edges are
kept on the host clock (``trigger_times_ns``) for hardware-trigger alignment.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from foveate.drivers.cameras.optional import require
from foveate.drivers.device import DeviceSettings
from foveate.drivers.event_camera import EventCamera
from foveate.drivers.event_cameras.stream import DeviceEventStream
from foveate.system.clock import Clock
from foveate.system.errors import DeviceError
from foveate.system.types import EventPacket


class LiveEventCameraSettings(DeviceSettings):
    camera: str = Field("", description="camera name or serial number; empty: the first camera found")
    width: int | None = Field(None, gt=0, description="expected sensor width (checked at open)")
    height: int | None = Field(None, gt=0, description="expected sensor height (checked at open)")
    latency_s: float = Field(0.0, ge=0, description="constant USB transfer latency to remove from event times")
    margin_s: float = Field(0.002, gt=0, description="how long after an event it is surely delivered")


class _LiveEventCamera(EventCamera):
    """Shared lifecycle; subclasses open the vendor object and pull batches into ``self._stream``."""

    Settings = LiveEventCameraSettings
    backend = ""

    def __init__(self, name: str, clock: Clock, camera: str = "", width: int | None = None,
                 height: int | None = None, latency_s: float = 0.0, margin_s: float = 0.002) -> None:
        super().__init__(name, clock, width or 1, height or 1)
        self.camera = camera
        self.expected_size = (width, height) if width and height else None
        self.latency_s = latency_s
        self.margin_s = margin_s
        self._stream: DeviceEventStream | None = None

    def _start_stream(self, sensor_size: tuple[int, int]) -> None:
        sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        if self.expected_size and sensor_size != self.expected_size:
            raise DeviceError(f"{self.name}: the camera's sensor is {sensor_size[0]}x{sensor_size[1]}, the rig file "
                              f"says {self.expected_size[0]}x{self.expected_size[1]}")
        self.sensor_size = sensor_size
        self._stream = DeviceEventStream(self.clock, sensor_size, self.name, self.latency_s, self.margin_s)
        self._stream.start()

    def _do_read(self, timeout_s: float) -> EventPacket:
        self._pull(timeout_s)
        return self._stream.packet()

    def _pull(self, timeout_s: float) -> None:
        raise NotImplementedError

    def trigger_times_ns(self) -> list[int]:
        """Host-clock times of the external-trigger rising edges seen so far."""
        return self._stream.trigger_times_ns() if self._stream else []

    def _do_status(self) -> dict[str, Any]:
        out = super()._do_status()
        s = self._stream
        out.update({"camera": self.camera or "(first found)", "late_events": s.late_events,
                    "triggers": len(s.trigger_device_us), "sync": s.sync.summary()})
        return out


class DVEventCamera(_LiveEventCamera):
    """An iniVation camera (DVXplorer, DAVIS) through dv-processing's camera capture."""

    backend = "dv"

    def _do_open(self) -> None:
        dv = require("dv_processing", "dv-processing", "dv")
        io = dv.io
        try:
            if hasattr(io, "camera") and hasattr(io.camera, "open"):  # dv-processing 2.x
                cap = io.camera.open(self.camera) if self.camera else io.camera.open()
            else:  # 1.x
                cap = io.CameraCapture(self.camera) if self.camera else io.CameraCapture()
        except Exception as exc:  # noqa: BLE001 - the library raises RuntimeError and friends
            raise DeviceError(f"{self.name}: dv-processing cannot open camera {self.camera or '(first found)'!r}: "
                              f"{exc}") from None
        if hasattr(cap, "isEventStreamAvailable") and not cap.isEventStreamAvailable():
            raise DeviceError(f"{self.name}: camera {cap.getCameraName()!r} has no event stream")
        self._cap = cap
        self._start_stream(tuple(cap.getEventResolution()))

    def _do_close(self) -> None:
        self._cap = None  # dv-processing closes the device when the capture object is released

    def _pull(self, timeout_s: float) -> None:
        cap = self._cap
        if hasattr(cap, "isRunning") and not cap.isRunning():
            raise DeviceError(f"{self.name}: the camera stopped (unplugged?)")
        while True:
            batch = cap.getNextEventBatch()
            if batch is None:
                break
            arr = batch.numpy()
            if len(arr):
                self._stream.add_batch(arr["x"], arr["y"], arr["timestamp"], arr["polarity"])
        get_triggers = getattr(cap, "getNextTriggerBatch", None)
        while get_triggers is not None:
            trig = get_triggers()
            if trig is None:
                break
            t = np.array([tr.timestamp for tr in trig], dtype=np.int64)
            kinds = [str(tr.type) for tr in trig]
            self._stream.add_triggers(t, [k.endswith("RISING_EDGE") for k in kinds])


class OpenEBEventCamera(_LiveEventCamera):
    """A Prophesee camera (EVK4, SilkyEVCam, ...) through OpenEB's ``EventsIterator``."""

    backend = "openeb"
    delta_t_us = 1000

    def _do_open(self) -> None:
        ev_io = require("metavision_core.event_io", "metavision-sdk (OpenEB)", "openeb",
                        hint="OpenEB's Python bindings come with the OpenEB build or Prophesee's installer, not PyPI")
        try:
            it = ev_io.EventsIterator(input_path=self.camera, mode="delta_t", delta_t=self.delta_t_us)
        except Exception as exc:  # noqa: BLE001
            raise DeviceError(f"{self.name}: OpenEB cannot open camera {self.camera or '(first found)'!r}: "
                              f"{exc}") from None
        self._iter_obj = it
        self._it = iter(it)
        height, width = it.get_size()
        self._start_stream((width, height))

    def _do_close(self) -> None:
        self._it = None
        self._iter_obj = None

    def _pull(self, timeout_s: float) -> None:
        """Take batches until one had to be waited for (caught up with the camera) or ``timeout_s`` passed."""
        deadline = self.clock.now_ns() + int(timeout_s * 1e9)
        while True:
            t_before = self.clock.now_ns()
            try:
                evs = next(self._it)
            except StopIteration:
                raise DeviceError(f"{self.name}: the camera stream ended (unplugged?)") from None
            if len(evs):
                self._stream.add_batch(evs["x"], evs["y"], evs["t"], evs["p"])
            reader = getattr(self._iter_obj, "reader", None)
            get_triggers = getattr(reader, "get_ext_trigger_events", None)
            if get_triggers is not None:
                trig = get_triggers()
                if len(trig):
                    self._stream.add_triggers(trig["t"], trig["p"])
                    reader.clear_ext_trigger_events()
            now = self.clock.now_ns()
            if now - t_before > self.delta_t_us * 500 or now >= deadline:
                return
