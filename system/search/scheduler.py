"""The pipelined real-time search loop.

One search frame per iteration, on the rig's injected clock::

    poll finished work      detections of earlier frames -> tracker; segmentations -> PPM
    wide sources            the wide camera at its frame rate; every 1/refresh_hz the segmentation
                            source (events since the last read, or the latest wide frame) is queued
    plan                    next view from the planner (PPM, tracks) or a baseline
    move                    command the mirror
    fire                    when in position (``settled``), on the controller's trigger
                            (``trigger``: the camera waits for it) or after the motion model's
                            travel time (``model``: galvos without feedback)
    read + queue detection  the frame goes to the detection stage, the loop moves on

So while frame k is being detected, the mirror already moves for frame
k+1: the planner of frame k+2 sees frame k's detections. The detection and
segmentation stages have bounded queues with a drop policy and counters
(``stages.py``); on a simulated clock they run in simulated time (fixed
latencies: deterministic runs), on a real clock in worker threads. Every
stage's latency goes into a histogram; a frame whose detections arrive
later than ``deadline_s`` after its exposure counts as a deadline overrun.

Observers (evaluation, recording, pictures) see every frame, detection and
map update through ``LoopObserver``; the loop itself never looks at ground
truth.
"""

from __future__ import annotations

import collections
import logging
import sys
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from foveate.system.errors import ConfigError, DeviceTimeoutError
from foveate.system.rig import Rig
from foveate.system.search.baselines import RandomPlanner, RasterPlanner
from foveate.system.search.components import build_geometry, build_model
from foveate.system.search.health import HealthMonitor
from foveate.system.search.planner import GalvoMotionModel, PlanContext, ProbabilityPlanner, View
from foveate.system.search.ppm import PriorTable, ProbabilityMap
from foveate.system.search.settings import SearchSettings, parse_search_settings
from foveate.system.search.stages import make_stage
from foveate.system.search.stats import Histograms
from foveate.system.search.tracker import Tracker, to_measurements

log = logging.getLogger(__name__)

LOOPS = ("ppm", "raster", "random")
PATH_HISTORY = 4096  # commands kept in SearchLoop.path (memory stays flat on long runs)


class LoopObserver:
    """Hooks called by the loop; override what you need."""

    def on_start(self, loop: "SearchLoop") -> None: ...
    def on_wide_frame(self, frame) -> None: ...
    def on_events(self, packet) -> None: ...
    def on_segmentation(self, t_ns: int, probs: np.ndarray, done_ns: int) -> None: ...
    def on_command(self, t_ns: int, view: View) -> None: ...
    def on_frame(self, frame, state, view: View) -> None: ...
    def on_detections(self, frame, state, view: View, detections, measurements, update: dict, done_ns: int) -> None: ...
    def on_tick(self, loop: "SearchLoop", t_ns: int) -> None: ...
    def on_end(self, loop: "SearchLoop") -> None: ...


@dataclass
class WideItem:
    kind: str  # events | frames
    data: object
    t_ns: int


class SearchLoop:
    """The search system on one rig; ``run(seconds)`` then ``summary()``."""

    def __init__(self, rig: Rig, loop: str = "ppm", settings: SearchSettings | None = None, detector=None,
                 segmenter=None, geometry=None, observers=(), seed: int | None = None) -> None:
        if loop not in LOOPS:
            raise ConfigError(f"unknown loop '{loop}' (expected one of: {', '.join(LOOPS)})")
        self.rig = rig
        self.kind = loop
        self.clock = rig.clock
        self.settings = settings or parse_search_settings(rig.config.search, rig.config.source)
        s = self.settings
        self.galvo = rig.role("search_galvo")
        self.search_cam = rig.role("search_camera")
        self.wide_cam = rig.role("wide_camera") if rig.has_role("wide_camera") else None
        self.events_cam = rig.role("wide_events") if rig.has_role("wide_events") else None
        self.model_notes: dict[str, str] = {}  # e.g. a fallback used because weights are not shipped
        self.detector = detector if detector is not None else build_model(rig, "detector", True, self.model_notes)
        self.segmenter = segmenter if segmenter is not None else (
            build_model(rig, "segmenter", False, self.model_notes) if loop == "ppm" else None)
        self.geometry = geometry if geometry is not None else build_geometry(rig)
        self.footprint = self.geometry.footprint_deg()
        self.footprint_half = tuple(float(v) for v in self.footprint / 2)
        self.hist = Histograms()
        self.tracker = Tracker(s.tracker)
        self.motion = GalvoMotionModel(s.galvo_model)
        seed = s.seed if seed is None else seed
        prior = PriorTable(s.ppm.prior, tuple(self.segmenter.classes), f"{rig.config.source}: search.ppm.prior") \
            if self.segmenter is not None else None
        self.source = self._wide_source() if loop == "ppm" else None
        sensor = None
        if self.source is not None:
            dev = self.events_cam if self.source == "events" else self.wide_cam
            sensor = (dev.name, (dev.width, dev.height) if hasattr(dev, "width") else tuple(dev.sensor_size))
        self.ppm = ProbabilityMap(self.geometry, s.ppm, prior, *(sensor or (None, None))) if loop == "ppm" else None
        if loop == "ppm":
            self.planner = ProbabilityPlanner(self.galvo.limits_deg, s.planner, self.motion, seed)
        elif loop == "raster":
            self.planner = RasterPlanner(self.galvo.limits_deg, self.footprint)
        else:
            self.planner = RandomPlanner(self.galvo.limits_deg, seed)
        self.observers = list(observers)
        self.detect_stage = make_stage("detect", self._detect, self.clock, s.scheduler.detect, self.hist)
        self.segment_stage = make_stage("segment", self._segment, self.clock, s.scheduler.segment, self.hist)
        self.frames = 0
        self.overruns = 0
        self.fire_timeouts = 0
        self.path: collections.deque[tuple[int, float, float, str]] = collections.deque(maxlen=PATH_HISTORY)  # (t_ns, x, y, purpose)
        self.health = HealthMonitor(self.clock, rig.config.reliability)  # device faults: detect, recover, report
        self.t_start_ns = 0
        self.t_end_ns = 0
        self.wall_s = 0.0
        self.last_wide = None
        self.last_probs = None
        self.wide_reads = 0
        self.event_count = 0
        self.device_cpu_s = 0.0
        self.main_cpu_s = 0.0

    # ------------------------------------------------------------------ set-up
    def _wide_source(self) -> str | None:
        if self.segmenter is None:
            return None
        want = self.settings.ppm.source
        can_events = self.events_cam is not None and hasattr(self.segmenter, "segment_events")
        can_frames = self.wide_cam is not None and hasattr(self.segmenter, "segment_frame")
        if want in ("auto", "events") and can_events:
            return "events"
        if want in ("auto", "frames") and can_frames:
            return "frames"
        raise ConfigError(f"{self.rig.config.source}: search.ppm.source: '{want}' is not available "
                          f"(event camera: {self.events_cam is not None}, wide camera: {self.wide_cam is not None}, "
                          f"segmenter takes events: {hasattr(self.segmenter, 'segment_events')}, "
                          f"frames: {hasattr(self.segmenter, 'segment_frame')})")

    def _detect(self, item):
        frame, state, view = item
        return self.detector.detect(frame.image)

    def _segment(self, item: WideItem):
        if item.kind == "events":
            return self.segmenter.segment_events(item.data)
        return self.segmenter.segment_frame(item.data)

    def _emit(self, name: str, *args) -> None:
        for ob in self.observers:
            getattr(ob, name)(*args)

    # ------------------------------------------------------------------ pieces
    def _collect(self, segmented=None, detected=None) -> None:
        for d in (self.segment_stage.poll() if segmented is None else segmented):
            item: WideItem = d.item
            self.ppm.update_segmentation(d.result, item.t_ns)
            self.last_probs = d.result
            self.planner.invalidate()
            self._emit("on_segmentation", item.t_ns, d.result, d.done_ns)
        for d in (self.detect_stage.poll() if detected is None else detected):
            frame, state, view = d.item
            t0 = time.perf_counter()
            cmd = state.measured_deg
            meas = to_measurements(d.result, self.geometry, cmd, frame.t_ns, self.settings.tracker.galvo_sigma_deg,
                                   self.settings.tracker.min_score)
            upd = self.tracker.update(frame.t_ns, cmd, self.footprint_half, meas)
            self.hist["track.compute"].record(time.perf_counter() - t0)
            if upd["new"]:
                self.planner.invalidate()
            e2e = (d.done_ns - frame.t_ns) * 1e-9
            self.hist["end_to_end"].record(e2e)
            if e2e > self.settings.scheduler.deadline_s:
                self.overruns += 1
            self._emit("on_detections", frame, state, view, d.result, meas, upd, d.done_ns)
        self.tracker.prune(self.clock.now_ns())

    def _read_wide_frame(self) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        frame = self.health.read(self.wide_cam)
        self.hist["wide.read"].record(time.perf_counter() - t0)
        self.device_cpu_s += time.thread_time() - c0
        if frame is None or not self.health.check_frame(self.wide_cam, frame, drop_late=False):
            return
        self.last_wide = frame
        self.wide_reads += 1
        self._emit("on_wide_frame", self.last_wide)

    def _refresh_map(self, now: int) -> None:
        """Read the segmentation source and queue a segmentation (events tile time: everything since the last read)."""
        packet = None
        if self.events_cam is not None and (self.source == "events" or any(hasattr(o, "wants_events") for o in self.observers)):
            t0, c0 = time.perf_counter(), time.thread_time()
            packet = self.health.read(self.events_cam)
            self.hist["events.read"].record(time.perf_counter() - t0)
            self.device_cpu_s += time.thread_time() - c0
            if packet is not None:
                self.event_count += len(packet)
                self._emit("on_events", packet)  # recorded whole; a burst is thinned for the map only
                packet = self.health.check_events(self.events_cam, packet)
        if self.source == "events" and packet is not None:
            self.segment_stage.submit(WideItem("events", packet, now))
        elif self.source == "frames" and self.last_wide is not None:
            self.segment_stage.submit(WideItem("frames", self.last_wide, now))

    def _fire(self, view: View, t_cmd: int):
        mode = self.settings.scheduler.fire
        if mode == "settled":
            try:
                return self.galvo.wait_settled(timeout_s=self.settings.scheduler.settle_timeout_s)
            except DeviceTimeoutError:
                self.fire_timeouts += 1
                return self.galvo.position()
        if mode == "model":
            prev = self.path[-2][1:3] if len(self.path) > 1 else self.galvo.park_deg
            self.clock.sleep_until_ns(t_cmd + int(self.motion.move_time_s(prev, view.cmd) * 1e9))
        return self.galvo.position()

    # -------------------------------------------------------------------- run
    def run(self, seconds: float, progress: bool = False, max_frames: int | None = None) -> dict:
        if not seconds > 0:
            raise ConfigError(f"seconds must be > 0, got {seconds}")
        clock = self.clock
        s = self.settings
        self.t_start_ns = t0 = clock.now_ns()
        t_end = t0 + int(seconds * 1e9)
        period = int(1e9 / s.ppm.refresh_hz)
        wide_hz = s.scheduler.wide_hz or (1e9 / getattr(self.wide_cam, "frame_period_ns", 1e9 / 30))
        wide_period = int(1e9 / wide_hz)
        next_map = next_wide = t0
        self._emit("on_start", self)
        bar = tqdm(total=int(seconds * 1000), unit="ms", desc=f"search[{self.kind}] (clock)", disable=not progress,
                   leave=False)
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        last_frame_t = None
        try:
            while clock.now_ns() < t_end and (max_frames is None or self.frames < max_frames):
                it0 = time.perf_counter()
                self._collect()
                now = clock.now_ns()
                if self.wide_cam is not None and now >= next_wide:
                    self._read_wide_frame()
                    next_wide = max(next_wide + wide_period, now + 1)
                if now >= next_map:
                    self._refresh_map(now)
                    next_map = max(next_map + period, now + 1)
                self.health.recover()
                if not self.health.usable(self.galvo, self.search_cam):  # keep mapping; the search waits
                    self.health.idle(self.galvo)
                    self._emit("on_tick", self, clock.now_ns())
                    continue
                p0 = time.perf_counter()
                ctx = PlanContext(now, self.galvo.commanded_deg, self.ppm, self.tracker, self.footprint_half)
                view = self.planner.next_view(ctx)
                self.hist["plan.compute"].record(time.perf_counter() - p0)
                t_cmd = clock.now_ns()
                if self.health.call(self.galvo, self.galvo.move_to, *view.cmd) is None:
                    continue
                self.path.append((t_cmd, view.cmd[0], view.cmd[1], view.purpose))
                self._emit("on_command", t_cmd, view)
                self._collect()  # on a real clock, results may land while the mirror moves
                w0, c0 = time.perf_counter(), time.thread_time()
                state = self.health.call(self.galvo, self._fire, view, t_cmd)
                if state is None:
                    continue
                self.hist["move"].record((state.t_ns - t_cmd) * 1e-9)
                w1 = time.perf_counter()
                frame = self.health.read(self.search_cam)
                w2 = time.perf_counter()
                self.device_cpu_s += time.thread_time() - c0
                self.hist["galvo.wait"].record(w1 - w0)
                self.hist["search.read"].record(w2 - w1)
                if frame is None or not self.health.check_frame(self.search_cam, frame, drop_late=True):
                    continue
                self.hist["capture"].record((clock.now_ns() - state.t_ns) * 1e-9)
                if self.ppm is not None:
                    self.ppm.mark_visited(state.measured_deg, self.footprint_half, frame.t_ns)
                self.detect_stage.submit((frame, state, view))
                self.frames += 1
                if last_frame_t is not None:
                    self.hist["cycle"].record((frame.t_ns - last_frame_t) * 1e-9)
                last_frame_t = frame.t_ns
                self._emit("on_frame", frame, state, view)
                self._emit("on_tick", self, clock.now_ns())
                self.hist["loop.wall"].record(time.perf_counter() - it0)
                if progress:
                    bar.update(min(int((clock.now_ns() - t0) / 1e6), bar.total) - bar.n)
        finally:
            bar.close()
            # Work already running finishes and is applied; what still waits in the queues is dropped (counted).
            detected, segmented = self.detect_stage.close(), self.segment_stage.close()
            if sys.exc_info()[0] is None:
                self._collect(segmented, detected)
            self.wall_s = time.perf_counter() - wall0
            self.main_cpu_s = time.thread_time() - cpu0
            self.t_end_ns = clock.now_ns()
        self._emit("on_end", self)
        return self.summary()

    def device_wall_s(self) -> float:
        """Wall time spent inside device calls (on the twin: simulation and rendering)."""
        return sum(self.hist[k].total for k in ("galvo.wait", "search.read", "wide.read", "events.read") if k in self.hist)

    def summary(self) -> dict:
        sim_s = max((self.t_end_ns - self.t_start_ns) * 1e-9, 1e-12)
        wall = max(self.wall_s, 1e-12)
        loop_wall = max(self.wall_s - self.device_wall_s(), 1e-12)
        return {
            "loop": self.kind,
            "rig": self.rig.config.name,
            "clock": type(self.clock).__name__,
            "detector": type(self.detector).__name__,
            "segmenter": type(self.segmenter).__name__ if self.segmenter is not None else None,
            "model_notes": dict(self.model_notes),
            "geometry": type(self.geometry).__name__,
            "ppm_source": self.source,
            "sim_seconds": round(sim_s, 6),
            "wall_seconds": round(self.wall_s, 3),
            "frames": self.frames,
            "search_frames": self.frames,
            "search_fps": round(self.frames / sim_s, 2),
            "search_fps_wall": round(self.frames / wall, 2),
            "search_fps_wall_excluding_devices": round(self.frames / loop_wall, 2),
            "device_wall_seconds": round(self.device_wall_s(), 3),
            # CPU seconds by thread: what the loop costs whatever else shares the machine.
            "cpu_seconds": {"loop_thread": round(self.main_cpu_s, 3), "of_which_devices": round(self.device_cpu_s, 3),
                            **{f"{n}_stage": round(self.hist[f"{n}.cpu"].total, 3) for n in ("detect", "segment")
                               if f"{n}.cpu" in self.hist}},
            "footprint_deg": [round(float(v), 4) for v in self.footprint],
            "latency_ms": self.hist.summary_ms(),
            "stages": {"detect": self.detect_stage.counters(), "segment": self.segment_stage.counters()},
            "drops": {"detect": self.detect_stage.dropped, "segment": self.segment_stage.dropped,
                      **{f"{n}.frames_dropped": getattr(d, "frames_dropped", 0) for n, d in self.rig.devices.items()
                         if hasattr(d, "frames_dropped")}},
            "overruns": self.overruns,
            "deadline_ms": round(self.settings.scheduler.deadline_s * 1e3, 3),
            "fire_timeouts": self.fire_timeouts,
            "faults": self.health.summary(),
            "tracks": {"alive": len(self.tracker.tracks), "confirmed": len(self.tracker.confirmed()),
                       "created": self.tracker.created, "dropped": self.tracker.dropped},
            "planner_rounds": self.planner.rounds,
            "ppm_refreshes": self.ppm.refreshes if self.ppm is not None else 0,
            "wide_frames": self.wide_reads,
            "events": self.event_count,
        }
