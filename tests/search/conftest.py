"""A miniature rig for the search tests: targets moving in mirror-command space, no rendering.

The galvo follows the planner's motion model exactly, the search camera
reports ground-truth boxes of the targets in its view (through the same
``LinearGeometry`` the loop uses), the detector turns them into detections
and the segmenter paints the targets into a class map of the wide view.
Everything is seeded and runs on a ManualClock in milliseconds.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest

from foveate.drivers.event_camera import EventCamera
from foveate.drivers.frame_camera import FrameCamera
from foveate.drivers.galvo import Galvo
from foveate.system.clock import ManualClock
from foveate.system.config import RigConfig
from foveate.system.context import RigContext
from foveate.system.search.geometry import LinearGeometry
from foveate.system.search.planner import GalvoMotionModel
from foveate.system.search.settings import GalvoModelSettings
from foveate.system.types import EVENT_DTYPE, Detection, EventPacket, Frame, GalvoState

LIMITS = ((-15.0, 15.0), (-11.0, 11.0))
CLASSES = ("flat", "construction+sky", "object", "nature", "human", "vehicle")


class MiniWorld:
    """Targets: class id, start command (x, y), velocity (deg/s), half-size (deg)."""

    def __init__(self, n: int = 8, seed: int = 0, speed: float = 0.5) -> None:
        rng = np.random.default_rng(seed)
        self.targets = []
        for i in range(n):
            cls = 4 if i % 2 == 0 else 5
            p = (rng.uniform(-13, 13), rng.uniform(-6, -2))
            v = (rng.uniform(-speed, speed), 0.0)
            half = (0.15, 0.4) if cls == 4 else (0.5, 0.3)
            self.targets.append((i, cls, p, v, half))

    def at(self, t_s: float) -> list[tuple]:
        return [(i, c, (p[0] + v[0] * t_s, p[1] + v[1] * t_s), h) for i, c, p, v, h in self.targets]


class MiniGalvo(Galvo):
    def __init__(self, name, clock, motion: GalvoMotionModel) -> None:
        super().__init__(name, clock, limits_deg=LIMITS)
        self.motion = motion
        self._pos = (0.0, 0.0)
        self._arrive = 0

    def _do_move_to(self, x, y) -> None:
        dt = float(self.motion.move_time_s(self._pos, (x, y)))
        self._arrive = self.clock.now_ns() + int(dt * 1e9)
        self._pos = (x, y)

    def _do_position(self) -> GalvoState:
        now = self.clock.now_ns()
        return GalvoState(self._pos, self._pos, now >= self._arrive, now)

    def _do_wait_settled(self, timeout_s):
        self.clock.sleep_until_ns(self._arrive)
        return self._do_position()


class MiniSearchCamera(FrameCamera):
    def __init__(self, name, clock, galvo: MiniGalvo, world: MiniWorld, geometry: LinearGeometry) -> None:
        super().__init__(name, clock, 64, 64, exposure_s=1e-3)
        self.galvo, self.world, self.geometry = galvo, world, geometry
        self.seq = -1
        self.frames: collections.OrderedDict[int, Frame] = collections.OrderedDict()

    def _do_read(self, timeout_s) -> Frame:
        start = self.clock.now_ns()
        self.clock.sleep_until_ns(start + 2_000_000)  # 1 ms exposure + 1 ms readout
        mid = start + 500_000
        cx, cy = self.galvo._pos
        step = self.geometry.search_step_deg / 2  # command degrees per pixel
        boxes = []
        for tid, cls, (x, y), (hw, hh) in self.world.at(mid * 1e-9):
            # Pixels grow right and down; command x right, y up (LinearGeometry's Jacobian).
            u0, u1 = 31.5 + (x - hw - cx) / step, 31.5 + (x + hw - cx) / step
            v0, v1 = 31.5 - (y + hh - cy) / step, 31.5 - (y - hh - cy) / step
            cu0, cu1, cv0, cv1 = max(u0, 0), min(u1, 64), max(v0, 0), min(v1, 64)
            if cu1 <= cu0 or cv1 <= cv0:
                continue
            vis = (cu1 - cu0) * (cv1 - cv0) / ((u1 - u0) * (v1 - v0))
            boxes.append({"class_id": cls, "target_id": tid, "box": [cu0, cv0, cu1, cv1], "visible_frac": vis})
        self.seq += 1
        img = np.zeros((64, 64), np.uint8)
        f = Frame(img, mid, 1e-3, self.seq, self.name, meta={"boxes": boxes})
        self.frames[id(img)] = f
        while len(self.frames) > 32:
            self.frames.popitem(last=False)
        return f


class MiniWideCamera(FrameCamera):
    def __init__(self, name, clock) -> None:
        super().__init__(name, clock, 160, 120)
        self.frame_period_ns = int(1e9 / 30)
        self.seq = -1

    def _do_read(self, timeout_s) -> Frame:
        self.seq += 1
        return Frame(np.full((120, 160), 128, np.uint8), self.clock.now_ns(), 1e-3, self.seq, self.name)


class MiniEventCamera(EventCamera):
    def __init__(self, name, clock) -> None:
        super().__init__(name, clock, 160, 120)
        self._t = 0

    def _do_read(self, timeout_s) -> EventPacket:
        t1 = self.clock.now_us()
        n = 3
        ev = np.zeros(n, EVENT_DTYPE)
        ev["t"] = np.linspace(self._t, max(self._t, t1 - 1), n).astype(np.int64) if t1 > self._t else self._t
        pkt = EventPacket(ev if t1 > self._t else ev[:0], (160, 120), self._t, max(t1, self._t), self.name)
        self._t = max(t1, self._t)
        return pkt


class MiniDetector:
    classes = ("human", "vehicle")

    def __init__(self, camera: MiniSearchCamera, sigma_px: float = 0.5, seed: int = 0) -> None:
        self.camera = camera
        self.sigma_px = sigma_px
        self.rng = np.random.default_rng(seed)

    def detect(self, image) -> list[Detection]:
        f = self.camera.frames.get(id(image))
        out = []
        for b in (f.meta["boxes"] if f is not None else []):
            if b["visible_frac"] < 0.3:
                continue
            x0, y0, x1, y1 = b["box"]
            c = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + self.rng.normal(0, self.sigma_px, 2)
            k = 0 if b["class_id"] == 4 else 1
            out.append(Detection(k, self.classes[k], 0.9, (x0, y0, x1, y1), (float(c[0]), float(c[1])),
                                 np.eye(2) * self.sigma_px**2, (x1 - x0, y1 - y0)))
        return out

    def detect_batch(self, images):
        return [self.detect(i) for i in images]


class MiniSegmenter:
    """Paints each target's box into the wide view's class map (ground elsewhere, sky above the horizon)."""

    classes = CLASSES

    def __init__(self, world: MiniWorld, geometry: LinearGeometry, clock) -> None:
        self.world, self.geometry, self.clock = world, geometry, clock

    def segment_events(self, packet) -> np.ndarray:
        W, H = 160, 120
        lab = np.full((H, W), 1, np.int64)
        lab[H // 2:] = 0
        for _, cls, (x, y), (hw, hh) in self.world.at(packet.t_end_us * 1e-6):
            (u0, v0), (u1, v1) = self.geometry.command_to_wide(np.array([[x - hw, y + hh], [x + hw, y - hh]]))
            lab[max(int(v0), 0):max(int(math.ceil(v1)), 0), max(int(u0), 0):max(int(math.ceil(u1)), 0)] = cls
        return (lab[None] == np.arange(6)[:, None, None]).astype(np.float32)


class MiniRig:
    def __init__(self, n_targets: int = 8, seed: int = 0, search: dict | None = None, clock=None) -> None:
        self.clock = clock if clock is not None else ManualClock()
        self.config = RigConfig.model_validate({"name": "mini", "devices": {}, "search": search or {}})
        self.context = RigContext(clock=self.clock)
        self.world = MiniWorld(n_targets, seed)
        self.geometry = LinearGeometry(LIMITS, (64, 64), 2.56, (160, 120), 64.0, "equiangular")
        motion = GalvoMotionModel(GalvoModelSettings())
        galvo = MiniGalvo("galvo", self.clock, motion)
        cam = MiniSearchCamera("search", self.clock, galvo, self.world, self.geometry)
        self.devices = {"galvo": galvo, "search": cam, "wide": MiniWideCamera("wide", self.clock),
                        "events": MiniEventCamera("events", self.clock)}
        self._roles = {"search_galvo": "galvo", "search_camera": "search", "wide_camera": "wide", "wide_events": "events"}
        for d in self.devices.values():
            d.open()
        self.detector = MiniDetector(cam)
        self.segmenter = MiniSegmenter(self.world, self.geometry, self.clock)

    def role(self, role):
        return self.devices[self._roles[role]]

    def has_role(self, role):
        return role in self._roles

    def loop(self, kind: str = "ppm", observers=(), **kw):
        from foveate.system.search.scheduler import SearchLoop

        return SearchLoop(self, kind, detector=self.detector, segmenter=self.segmenter if kind == "ppm" else None,
                          geometry=self.geometry, observers=observers, **kw)


class MiniTruth:
    """GroundTruth of a MiniRig for the evaluator."""

    def __init__(self, rig: MiniRig) -> None:
        self.rig = rig

    def targets(self, t_ns):
        return [{"target_id": i, "class_id": c, "cmd": p, "half_deg": h, "reachable": True}
                for i, c, p, h in self.rig.world.at(t_ns * 1e-9)]

    def frame_boxes(self, frame):
        return frame.meta.get("boxes", [])


@pytest.fixture
def mini_rig():
    return MiniRig()


@pytest.fixture
def kit():
    """The classes of the miniature rig, for tests that build their own."""
    import types

    return types.SimpleNamespace(MiniRig=MiniRig, MiniTruth=MiniTruth, LIMITS=LIMITS, CLASSES=CLASSES)
