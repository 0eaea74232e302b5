"""Frame camera ``opencv``: anything ``cv2.VideoCapture`` opens.

``source`` is a device index (``0``), a video file, a URL (``rtsp://...``) or a
GStreamer pipeline (with ``api: gstreamer``).

* Live sources (device, URL, pipeline) are read by a grabber thread into a
  small queue, so ``read(timeout_s)`` can time out and a slow consumer
  loses the *oldest* frames (counted in ``frames_dropped``) rather than
  reading stale ones. Frames are stamped at arrival minus ``latency_s``
  minus half the exposure (``foveate.drivers.cameras.timing``); gaps longer
  than one frame period count as dropped frames.
* Video files play as a camera on the rig clock: frame k of the file is
  exposed at ``t_open + pts_k`` (its presentation time) and becomes readable
  after its exposure; ``mode: every`` delivers every frame (sleeping on the
  clock until it is due; instantaneous on a simulated clock), ``mode: live``
  skips frames whose time has passed, like a real camera, and counts them.
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import Field

from foveate.drivers.cameras.timing import FrameTiming
from foveate.drivers.device import DeviceSettings
from foveate.drivers.frame_camera import FrameCamera
from foveate.system.clock import Clock
from foveate.system.context import RigContext
from foveate.system.errors import DeviceError, DeviceTimeoutError
from foveate.system.types import Frame

APIS = {
    "any": cv2.CAP_ANY,
    "v4l2": cv2.CAP_V4L2,
    "ffmpeg": cv2.CAP_FFMPEG,
    "gstreamer": cv2.CAP_GSTREAMER,
    "dshow": cv2.CAP_DSHOW,
    "msmf": cv2.CAP_MSMF,
    "avfoundation": cv2.CAP_AVFOUNDATION,
    "images": cv2.CAP_IMAGES,
}


def to_mono_or_bgr(image: np.ndarray, grayscale: bool) -> np.ndarray:
    """uint8/uint16 image, grey (H, W) when asked, BGR otherwise."""
    if image.dtype not in (np.uint8, np.uint16):
        image = np.clip(image, 0, 255).astype(np.uint8)
    if grayscale and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(image)


def crop(image: np.ndarray, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    if roi is None:
        return image
    x, y, w, h = roi
    return image[y : y + h, x : x + w]


class OpenCVCameraSettings(DeviceSettings):
    source: int | str = Field(description="device index, video file, URL or GStreamer pipeline")
    api: Literal["any", "v4l2", "ffmpeg", "gstreamer", "dshow", "msmf", "avfoundation", "images"] = "any"
    width: int | None = Field(None, gt=0)
    height: int | None = Field(None, gt=0)
    frame_rate_hz: float | None = Field(None, gt=0)
    exposure_s: float = Field(0.01, gt=0)
    gain: float | None = None
    roi: tuple[int, int, int, int] | None = None  # x, y, width, height (software crop)
    grayscale: bool = True
    latency_s: float | None = Field(None, ge=0, description="readout + transfer; default one frame period (live)")
    mode: Literal["every", "live"] = "every"  # video files: deliver every frame, or skip late ones like a camera
    loop: bool = False  # video files: start again at the end
    queue_frames: int = Field(2, ge=1, le=64)  # live sources: frames held for the reader
    threaded: bool | None = Field(None, description="grabber thread + arrival stamps; default: live sources only")


class OpenCVCamera(FrameCamera):
    """A ``cv2.VideoCapture`` source as a ``FrameCamera``; see the module docstring."""

    Settings = OpenCVCameraSettings

    def __init__(self, name: str, clock: Clock, source: int | str, api: str = "any", width: int | None = None,
                 height: int | None = None, frame_rate_hz: float | None = None, exposure_s: float = 0.01,
                 gain: float | None = None, roi=None, grayscale: bool = True, latency_s: float | None = None,
                 mode: str = "every", loop: bool = False, queue_frames: int = 2,
                 threaded: bool | None = None) -> None:
        super().__init__(name, clock, width or 1, height or 1, exposure_s=exposure_s)
        if isinstance(source, str) and source.strip().isdigit():
            source = int(source)  # "0" in a rig file means the device index, not a file named 0
        self.source = source
        self.api = api
        self.requested = (width, height)
        self.frame_rate_hz = frame_rate_hz
        self.gain = gain
        self.roi = tuple(roi) if roi is not None else None
        self.grayscale = grayscale
        self.latency_s = latency_s
        self.mode = mode
        self.loop = loop
        self.queue_frames = queue_frames
        self.is_file = isinstance(source, str) and os.path.isfile(source)
        # A file can also be read like a live stream (as fast as it decodes, stamped at arrival).
        self.threaded = (not self.is_file) if threaded is None else bool(threaded)
        self._cap: cv2.VideoCapture | None = None
        self._thread: threading.Thread | None = None
        self._count_lock = threading.Lock()
        self._seq = -1

    @classmethod
    def from_config(cls, name: str, settings: OpenCVCameraSettings, context: RigContext) -> "OpenCVCamera":
        s = settings.model_dump()
        src = s["source"]
        if isinstance(src, str) and "://" not in src and "!" not in src and not os.path.isabs(src):
            candidate = context.resolve(src)
            if candidate.exists():
                s["source"] = str(candidate)
        return cls(name=name, clock=context.clock, **s)

    # ------------------------------------------------------------------ lifecycle
    def _do_open(self) -> None:
        cap = cv2.VideoCapture(self.source, APIS[self.api])
        if not cap.isOpened():
            cap.release()
            what = "video file" if self.is_file else "source"
            raise DeviceError(f"{self.name}: OpenCV cannot open {what} {self.source!r} (api: {self.api}); "
                              "check the path, device index or pipeline, and that OpenCV was built with that backend")
        self._cap = cap
        if not self.is_file:
            self._configure_live(cap)
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self.requested[0] and (w, h) != self.requested and not self.is_file:
            cap.release()
            raise DeviceError(f"{self.name}: asked for {self.requested[0]}x{self.requested[1]}, the source delivers "
                              f"{w}x{h}; set width/height to a mode the camera supports (or leave them out)")
        if self.roi is not None:
            x, y, rw, rh = self.roi
            if x < 0 or y < 0 or x + rw > w or y + rh > h:
                cap.release()
                raise DeviceError(f"{self.name}: roi {list(self.roi)} does not fit in the {w}x{h} image")
            w, h = rw, rh
        self.width, self.height = w, h
        fps = self.frame_rate_hz or cap.get(cv2.CAP_PROP_FPS) or None
        self.period_s = 1.0 / fps if fps and fps > 0 else None
        latency = self.latency_s if self.latency_s is not None else (self.period_s or 0.0 if self.threaded else 0.0)
        self.timing = FrameTiming(self.clock, latency_s=latency, period_s=self.period_s)
        self._t0_ns = self.clock.now_ns()
        self._loop_offset_ns = 0
        self._last_pts_ns = -1
        self._pending: tuple[np.ndarray, int] | None = None
        self._seq = -1
        if self.threaded:
            self._queue: queue.Queue = queue.Queue(maxsize=self.queue_frames)
            self._stop = threading.Event()
            self._grab_error: str | None = None
            self._thread = threading.Thread(target=self._grab_loop, name=f"opencv-grab {self.name}", daemon=True)
            self._thread.start()

    def _configure_live(self, cap: cv2.VideoCapture) -> None:
        w, h = self.requested
        if w and h:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        if self.frame_rate_hz:
            cap.set(cv2.CAP_PROP_FPS, self.frame_rate_hz)
        if self.gain is not None:
            cap.set(cv2.CAP_PROP_GAIN, self.gain)
        self._apply_exposure(self._exposure_s)

    def _apply_exposure(self, exposure_s: float) -> None:
        cap = self._cap
        if cap is None or self.is_file:
            return
        if self.api == "v4l2" or cap.getBackendName() == "V4L2":
            cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2 "manual" mode
            ok = cap.set(cv2.CAP_PROP_EXPOSURE, exposure_s * 1e4)  # exposure_absolute, in 100 us units
        else:
            ok = cap.set(cv2.CAP_PROP_EXPOSURE, exposure_s)
        if not ok:
            self.log.warning("backend %s did not accept exposure %.6g s; frames carry the requested value",
                             cap.getBackendName(), exposure_s)

    def _do_close(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None:
            self._stop.set()
            thread.join(timeout=2.0)
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _do_set_exposure(self, exposure_s: float) -> None:
        self._apply_exposure(exposure_s)

    # ------------------------------------------------------------------ live
    def _grab_loop(self) -> None:
        cap = self._cap
        while not self._stop.is_set():
            ok = cap.grab()
            arrival = self.clock.now_ns()
            if not ok:
                self._grab_error = "the source stopped delivering frames"
                return
            ok, image = cap.retrieve()
            if not ok or image is None:
                continue
            item = (image, arrival, self._exposure_s)
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    with self._count_lock:
                        self.frames_dropped += 1  # the reader is too slow: lose the oldest frame
                except queue.Empty:
                    pass
                self._queue.put_nowait(item)

    def _read_live(self, timeout_s: float) -> Frame:
        try:
            image, arrival, exposure_s = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            why = f": {self._grab_error}" if self._grab_error else ""
            raise DeviceTimeoutError(f"{self.name}: no frame within {timeout_s:g} s from {self.source!r}{why}") from None
        mid = self.timing.stamp(arrival, exposure_s)
        with self._count_lock:
            self.frames_dropped += self.timing.gap(mid)
        self._seq += 1
        return Frame(crop(to_mono_or_bgr(image, self.grayscale), self.roi), mid, exposure_s, self._seq, self.name,
                     meta={"arrival_ns": arrival})

    # ------------------------------------------------------------------ file
    def _next_file_frame(self) -> tuple[np.ndarray, int]:
        cap = self._cap
        ok, image = cap.read()
        if not ok:
            if not self.loop:
                raise DeviceTimeoutError(f"{self.name}: end of video file {self.source!r} after {self._seq + 1} "
                                         "frames (set loop: true to play it again)")
            period = int((self.period_s or 0.0) * 1e9)
            self._loop_offset_ns = self._last_pts_ns + period
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read()
            if not ok:
                raise DeviceError(f"{self.name}: cannot rewind video file {self.source!r}")
        pts_ns = int(round(cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6)) + self._loop_offset_ns
        if pts_ns <= self._last_pts_ns:  # containers without timestamps: fall back to the frame rate
            pts_ns = self._last_pts_ns + int((self.period_s or 1 / 30) * 1e9)
        self._last_pts_ns = pts_ns
        return image, pts_ns

    def _read_file(self, timeout_s: float) -> Frame:
        exp_ns = int(self._exposure_s * 1e9)
        lat_ns = int(self.timing.latency_s * 1e9)
        while True:
            image, pts_ns = self._pending or self._next_file_frame()
            self._pending = None
            start = self._t0_ns + pts_ns
            ready = start + exp_ns + lat_ns
            if self.mode == "live" and ready < self.clock.now_ns() - int((self.period_s or 0) * 1e9):
                self.frames_dropped += 1  # a camera would have overwritten this frame already
                continue
            break
        if ready - self.clock.now_ns() > timeout_s * 1e9:
            self._pending = (image, pts_ns)  # still the next frame for a later read
            self.clock.sleep_ns(int(timeout_s * 1e9))
            raise DeviceTimeoutError(f"{self.name}: no frame of {self.source!r} within {timeout_s:g} s")
        self.clock.sleep_until_ns(ready)
        self._seq += 1
        mid = start + exp_ns // 2
        return Frame(crop(to_mono_or_bgr(image, self.grayscale), self.roi), mid, self._exposure_s, self._seq,
                     self.name, device_t_ns=pts_ns, meta={"pts_ns": pts_ns})

    def _do_read(self, timeout_s: float) -> Frame:
        return self._read_live(timeout_s) if self.threaded else self._read_file(timeout_s)

    def _do_status(self) -> dict[str, Any]:
        out = super()._do_status()
        out["source"] = str(self.source)
        if self._cap is not None:
            out["backend_api"] = self._cap.getBackendName()
        if self.period_s:
            out["frame_rate_hz"] = round(1.0 / self.period_s, 3)
        out["stamping"] = (f"arrival - {self.timing.latency_s * 1e3:.3g} ms" if self.threaded
                           else "presentation time")
        return out
