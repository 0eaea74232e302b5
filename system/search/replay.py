"""Deterministic offline re-runs of the search loop on a recording.

``replay(path)`` rebuilds the loop of a recording (its settings, its
geometry tables, its planner and seed) on replay devices that serve the
recorded data on a simulated clock:

* the galvo answers ``wait_settled`` with the recorded mirror state at the
  recorded time and checks each command the planner gives against the one
  recorded (a different command is a *divergence*: the recording has no
  view there, so the replay goes on open loop with the recorded frames);
* the search, wide and event cameras hand out the recorded frames and
  packets at their recorded times;
* the detector and segmenter are the recorded outputs (``models="recorded"``,
  default), or the rig's models run on the recorded images and events
  (``models="rig"``: test a new detector offline on real data).

With recorded outputs and the fixed stage latencies of a simulated-clock
recording, a replay reproduces the run exactly: same commands, same tracks.
"""

from __future__ import annotations

import collections
import json
import logging
from pathlib import Path

import numpy as np

from foveate.drivers.event_camera import EventCamera
from foveate.drivers.frame_camera import FrameCamera
from foveate.drivers.galvo import Galvo
from foveate.system.clock import ManualClock
from foveate.system.config import RigConfig
from foveate.system.errors import DeviceTimeoutError
from foveate.system.search.geometry import TabulatedGeometry
from foveate.system.search.recorder import PURPOSES, Recording, RecordingError
from foveate.system.search.settings import SearchSettings
from foveate.system.types import Detection, EventPacket, Frame, GalvoState

log = logging.getLogger(__name__)


class ReplayGalvo(Galvo):
    def __init__(self, name, clock, limits_deg, park_deg, search: dict) -> None:
        super().__init__(name, clock, limits_deg=limits_deg, park_deg=park_deg)
        self.s = search
        self.k = -1  # index of the frame being prepared
        self.divergences = 0
        self.matched = 0

    def _do_move_to(self, theta_x_deg: float, theta_y_deg: float) -> None:
        self.k += 1
        if self.k < len(self.s["cmd"]):
            rx, ry = self.s["cmd"][self.k]
            if abs(rx - theta_x_deg) > 1e-9 or abs(ry - theta_y_deg) > 1e-9:
                self.divergences += 1
            else:
                self.matched += 1

    def _state(self, k: int) -> GalvoState:
        mx, my = self.s["measured"][k]
        return GalvoState(tuple(self.s["cmd"][k]), (float(mx), float(my)), bool(self.s["settled"][k]),
                          int(self.s["state_t_ns"][k]))

    def _do_position(self) -> GalvoState:
        k = min(max(self.k, 0), len(self.s["cmd"]) - 1)
        if self.k < 0 or self.k >= len(self.s["cmd"]):
            return GalvoState(self.commanded_deg, self.commanded_deg, True, self.clock.now_ns())
        return self._state(k)

    def _do_wait_settled(self, timeout_s: float) -> GalvoState:
        if self.k >= len(self.s["cmd"]):
            raise EndOfRecording()
        self.clock.sleep_until_ns(int(self.s["state_t_ns"][self.k]))
        return self._state(self.k)


class EndOfRecording(DeviceTimeoutError):
    """The replay ran past the recorded data."""


class ReplayFrameCamera(FrameCamera):
    def __init__(self, name, clock, width, height, stream: dict, truth: bool = False) -> None:
        super().__init__(name, clock, width, height)
        self.s = stream
        self.k = 0
        self.truth = truth
        self.memo: collections.OrderedDict[int, tuple] = collections.OrderedDict()

    def _do_read(self, timeout_s: float) -> Frame:
        if self.k >= len(self.s.get("t_ns", ())):
            raise EndOfRecording(f"{self.name}: end of the recording")
        k = self.k
        self.k += 1
        self.clock.sleep_until_ns(int(self.s["ready_ns"][k]))
        meta = {}
        if self.truth and "truth" in self.s:
            meta["boxes"] = json.loads(str(self.s["truth"][k]))
        image = self.s["image"][k]
        frame = Frame(image, int(self.s["t_ns"][k]), float(self.s.get("exposure_s", [0.0] * (k + 1))[k]),
                      int(self.s["seq"][k]), self.name, meta=meta)
        self.memo[id(image)] = (image, int(self.s["seq"][k]))
        while len(self.memo) > 64:
            self.memo.popitem(last=False)
        return frame


class ReplayEventCamera(EventCamera):
    def __init__(self, name, clock, width, height, stream: dict) -> None:
        super().__init__(name, clock, width, height)
        self.s = stream
        self.k = 0
        counts = np.asarray(stream.get("count", []), dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    def _do_read(self, timeout_s: float) -> EventPacket:
        if self.k >= len(self.s.get("t_start_us", ())):
            raise EndOfRecording(f"{self.name}: end of the recording")
        k = self.k
        self.k += 1
        self.clock.sleep_until_ns(int(self.s["ready_ns"][k]))
        ev = self.s["events"][self.offsets[k]:self.offsets[k + 1]]
        return EventPacket(ev, self.sensor_size, int(self.s["t_start_us"][k]), int(self.s["t_end_us"][k]), self.name)


class RecordedDetector:
    """The detections of the recording, for the frame each image came from."""

    def __init__(self, camera: ReplayFrameCamera, det: dict, classes: tuple[str, ...]) -> None:
        self.camera = camera
        self.classes = classes
        self.by_seq: dict[int, list[Detection]] = collections.defaultdict(list)
        for k in range(len(det.get("frame_seq", ()))):
            self.by_seq[int(det["frame_seq"][k])].append(Detection(
                int(det["cls"][k]), str(det["label"][k]), float(det["score"][k]), tuple(map(float, det["box"][k])),
                tuple(map(float, det["centre"][k])), np.asarray(det["cov"][k]), tuple(map(float, det["size"][k])),
                tuple(map(float, det["size_var"][k]))))

    def detect(self, image: np.ndarray) -> list[Detection]:
        hit = self.camera.memo.get(id(image))
        return list(self.by_seq.get(hit[1], [])) if hit is not None else []

    def detect_batch(self, images) -> list[list[Detection]]:
        return [self.detect(im) for im in images]


class RecordedSegmenter:
    """The recorded segmentations, in the order the loop asks for them."""

    def __init__(self, seg: dict, classes: tuple[str, ...]) -> None:
        self.probs = seg.get("probs", np.zeros((0,)))
        self.classes = classes
        self.k = 0

    def _next(self) -> np.ndarray:
        if self.k >= len(self.probs):
            raise EndOfRecording("no more recorded segmentations")
        p = self.probs[self.k]
        self.k += 1
        return p

    def segment_events(self, packet) -> np.ndarray:
        return self._next()

    def segment_frame(self, frame) -> np.ndarray:
        return self._next()


class _ReplayRig:
    """What the loop needs of a rig, over replay devices."""

    def __init__(self, config: RigConfig, clock, devices: dict, roles: dict) -> None:
        self.config = config
        self.clock = clock
        self.devices = devices
        self._roles = roles
        from foveate.system.context import RigContext

        self.context = RigContext(clock=clock)

    def role(self, role: str):
        return self.devices[self._roles[role]]

    def has_role(self, role: str) -> bool:
        return role in self._roles


def replay(path: Path, models: str = "recorded", observers=(), progress: bool = False):
    """Re-run the recorded loop; returns ``(loop, report)`` with the divergence counts."""
    from foveate.system.search.scheduler import SearchLoop

    rec = Recording(path)
    if not rec.chunks:
        raise RecordingError(f"{path}: no complete chunk to replay")
    mf = rec.manifest
    t0 = int(mf["t0_ns"])
    clock = ManualClock(t0)
    search = rec.stream("search")
    wide = rec.stream("wide")
    events = rec.stream("events")
    try:  # the manifest was checked for the keys every reader needs; these are the replay's own
        rig_data = dict(mf["rig"])
        cfg = RigConfig.model_validate({k: v for k, v in rig_data.items() if k in RigConfig.model_fields})
        cfg.source = f"{path}/recording.json"
        cams = mf["cameras"]
        g = mf["galvo"]
        devices, roles = {}, {}
        galvo = ReplayGalvo(g["name"], clock, tuple(map(tuple, g["limits_deg"])), tuple(g["park_deg"]), search)
        devices[galvo.name], roles["search_galvo"] = galvo, galvo.name
        sc = cams["search_camera"]
        scam = ReplayFrameCamera(sc["name"], clock, sc["width"], sc["height"], search, truth=True)
        devices[scam.name], roles["search_camera"] = scam, scam.name
        if "wide_camera" in cams and wide:
            wc = cams["wide_camera"]
            devices[wc["name"]] = ReplayFrameCamera(wc["name"], clock, wc["width"], wc["height"], wide)
            roles["wide_camera"] = wc["name"]
        if "wide_events" in cams and events:
            ec = cams["wide_events"]
            devices[ec["name"]] = ReplayEventCamera(ec["name"], clock, *ec["sensor_size"], events)
            roles["wide_events"] = ec["name"]
        rig = _ReplayRig(cfg, clock, devices, roles)
        geometry = TabulatedGeometry.thaw(rec.geometry_tables())
        settings = SearchSettings.model_validate(mf["settings"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        what = f"key {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise RecordingError(f"{path}/recording.json: cannot rebuild the recorded rig: {what}") from None
    for d in devices.values():
        d.open()
    if models == "recorded":
        detector = RecordedDetector(scam, rec.stream("detections"), tuple(mf.get("detector_classes", ())))
        segmenter = RecordedSegmenter(rec.stream("segmentation"), tuple(mf.get("segmenter_classes", ()))) \
            if mf.get("segmenter") else None
    elif models == "rig":
        detector = segmenter = None
    else:
        raise RecordingError(f"models must be 'recorded' or 'rig', got {models!r}")
    loop = SearchLoop(rig, mf["loop"], settings=settings, detector=detector, segmenter=segmenter, geometry=geometry,
                      observers=observers)
    galvo._commanded_deg = tuple(mf.get("start_cmd", galvo.park_deg))
    seconds = (rec.t1_ns - t0) * 1e-9
    try:
        loop.run(seconds, progress=progress, max_frames=len(search["t_ns"]))
    except EndOfRecording:
        pass
    report = {"recording": str(path), "frames_recorded": int(len(search["t_ns"])), "frames_replayed": loop.frames,
              "commands_matched": galvo.matched, "commands_diverged": galvo.divergences,
              "deterministic": galvo.divergences == 0 and loop.frames == len(search["t_ns"]),
              "models": models, "problems": rec.problems}
    return loop, report
