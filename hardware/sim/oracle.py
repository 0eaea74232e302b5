"""Test doubles of the search loop's models on the twin, built from ground truth.

Named in a rig file like any model (``models.detector.backend:
foveate.hardware.sim.oracle:OracleDetector``), so moving to the real
detector, SLTNet or a fitted calibration is a rig-file change. They exist
to test and benchmark the search system before (and independently of) the
learned models; results obtained with them say so (the run summary names
the detector and segmenter classes).

* ``OracleDetector``: the twin's ground-truth boxes of each search frame,
  with configurable centre noise (and an honest covariance for it), miss
  rate, false detections and a minimum visible fraction; ``cost_model`` (an
  exported detector ONNX file) makes it also run that network on every image
  and discard its output, so throughput is measured at a real model's cost.
* ``OracleSegmenter``: the true class map of the wide view at the packet's
  end time, blurred and mixed with uniform label noise, as (C, H, W)
  probabilities.
* ``TwinGeometry``: the twin's true search geometry (``calibration.search_geometry``).
* ``TwinGroundTruth``: target positions in command space and per-frame boxes,
  for evaluation only (``foveate.system.search.evaluation``).
"""

from __future__ import annotations

import collections
from typing import Any

import cv2
import numpy as np

from foveate.hardware.sim.twin import twin_for
from foveate.system.errors import ConfigError
from foveate.system.search.geometry import GalvoCameraGeometry
from foveate.system.types import Detection

from foveate.hardware.sim.scene import CLASSES, HUMAN, VEHICLE

TARGET_CLASSES = (HUMAN, VEHICLE)


def _device_by_role(rig, role: str, where: str):
    if not rig.has_role(role):
        raise ConfigError(f"{where}: the rig has no device with role '{role}'")
    return rig.role(role)


# ------------------------------------------------------------------ twin adapter
def _twin(rig):
    return twin_for(rig.context)


def frame_boxes(frame, twin=None) -> list[dict]:
    """Ground-truth boxes of a search frame: ``{class_id, target_id, box: [x0, y0, x1, y1], visible_frac}``."""
    return list((frame.meta or {}).get("boxes", ()))


class _FrameMemo:
    """Remembers the last frames a camera delivered, by image identity (the Detector protocol passes images)."""

    def __init__(self, camera, size: int = 64) -> None:
        self.frames: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self.size = size
        original = camera._do_read

        def _do_read(timeout_s):
            frame = original(timeout_s)
            self.frames[id(frame.image)] = frame  # keeps the image alive, so its id stays unique
            while len(self.frames) > self.size:
                self.frames.popitem(last=False)
            return frame

        camera._do_read = _do_read

    def lookup(self, image):
        return self.frames.get(id(image))


# ---------------------------------------------------------------------- detector
class OracleDetector:
    """Ground-truth detections with noise; satisfies ``foveate.system.inference.Detector``."""

    classes = tuple(CLASSES[c] for c in TARGET_CLASSES)

    def __init__(self, memo: _FrameMemo | None = None, twin=None, sigma_px: float = 1.5, miss_rate: float = 0.02,
                 false_rate: float = 0.01, min_visible: float = 0.3, cov_scale: float = 1.0, seed: int = 0,
                 cost_model: str | None = None, cost_threads: int = 1) -> None:
        for name, v in (("miss_rate", miss_rate), ("false_rate", false_rate), ("min_visible", min_visible)):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        self.memo = memo
        self.twin = twin
        self.sigma_px = float(sigma_px)
        self.miss_rate = float(miss_rate)
        self.false_rate = float(false_rate)
        self.min_visible = float(min_visible)
        self.cov_scale = float(cov_scale)
        self.rng = np.random.default_rng(seed)
        self.unknown_images = 0
        # A real detector whose inference runs on every image and whose output is discarded: the
        # detections stay the oracle's while the loop pays a real model's compute (throughput benchmarks).
        self.cost = None
        if cost_model is not None:
            from foveate.models.detector.runtime import OnnxDetector

            self.cost = OnnxDetector(cost_model, threads=int(cost_threads))

    @classmethod
    def from_rig(cls, rig, settings: dict, where: str) -> "OracleDetector":
        cam = _device_by_role(rig, "search_camera", where)
        try:
            return cls(memo=_FrameMemo(cam), twin=_twin(rig), **settings)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.settings: {exc}") from None

    def detect_frame(self, frame) -> list[Detection]:
        out = []
        H, W = frame.image.shape[:2]
        for b in frame_boxes(frame, self.twin):
            if b["class_id"] not in TARGET_CLASSES or b["visible_frac"] < self.min_visible:
                continue
            if self.rng.random() < self.miss_rate:
                continue
            x0, y0, x1, y1 = b["box"]
            # Truncated or occluded targets localise worse: the noise grows as the visible part shrinks.
            sigma = self.sigma_px / np.sqrt(max(b["visible_frac"], 0.05))
            c = np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + self.rng.normal(0.0, sigma, 2)
            cov = np.eye(2) * (sigma**2 * self.cov_scale)
            k = TARGET_CLASSES.index(b["class_id"])
            score = float(np.clip(0.55 + 0.45 * b["visible_frac"] + self.rng.normal(0, 0.03), 0.0, 1.0))
            out.append(Detection(k, self.classes[k], score, (x0, y0, x1, y1), (float(c[0]), float(c[1])), cov,
                                 (x1 - x0, y1 - y0), (sigma**2, sigma**2)))
        if self.rng.random() < self.false_rate:
            k = int(self.rng.integers(len(self.classes)))
            c = self.rng.uniform([0, 0], [W, H])
            s = 8.0 * self.sigma_px
            out.append(Detection(k, self.classes[k], float(self.rng.uniform(0.3, 0.6)),
                                 (c[0] - 10, c[1] - 10, c[0] + 10, c[1] + 10), (float(c[0]), float(c[1])),
                                 np.eye(2) * s**2, (20.0, 20.0), (s**2, s**2)))
        return out

    def detect(self, image: np.ndarray) -> list[Detection]:
        if self.cost is not None:
            self.cost.detect(image)
        frame = self.memo.lookup(image) if self.memo is not None else None
        if frame is None:
            self.unknown_images += 1  # not a frame of the twin's search camera: nothing to report
            return []
        return self.detect_frame(frame)

    def detect_batch(self, images) -> list[list[Detection]]:
        return [self.detect(im) for im in images]


# --------------------------------------------------------------------- segmenter
class OracleSegmenter:
    """True class maps of the wide view as probabilities; satisfies ``foveate.system.inference.Segmenter``."""

    classes = tuple(CLASSES)

    def __init__(self, twin=None, event_camera=None, blur_px: float = 1.0, label_noise: float = 0.02) -> None:
        if not 0.0 <= label_noise <= 1.0:
            raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
        self.twin = twin
        self.event_camera = event_camera
        self.blur_px = float(blur_px)
        self.label_noise = float(label_noise)

    @classmethod
    def from_rig(cls, rig, settings: dict, where: str) -> "OracleSegmenter":
        ev = rig.role("wide_events") if rig.has_role("wide_events") else None
        try:
            return cls(twin=_twin(rig), event_camera=ev, **settings)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}.settings: {exc}") from None

    def _probs(self, labels: np.ndarray) -> np.ndarray:
        C = len(self.classes)
        onehot = (labels[None, :, :] == np.arange(C)[:, None, None]).astype(np.float32)
        if self.blur_px > 0:
            onehot = np.stack([cv2.GaussianBlur(ch, (0, 0), self.blur_px) for ch in onehot])
        return (1.0 - self.label_noise) * onehot + self.label_noise / C

    def segment_events(self, packet) -> np.ndarray:
        cam = self.event_camera
        if cam is None:
            raise ConfigError("OracleSegmenter: the rig has no wide_events camera to segment")
        return self._probs(cam.labels_at(packet.t_end_us))

    def segment_frame(self, frame) -> np.ndarray:
        labels = (frame.meta or {}).get("labels")
        if labels is None:
            raise ConfigError(f"OracleSegmenter: frame from '{frame.source}' carries no ground-truth labels")
        return self._probs(labels)


# ---------------------------------------------------------------------- geometry
class TwinGeometry:
    """The twin's true search geometry, for ``calibration.search_geometry`` on a simulated rig."""

    @classmethod
    def from_rig(cls, rig, settings: dict, where: str) -> GalvoCameraGeometry:
        grid_step_deg = float(settings.pop("grid_step_deg", 1.0))
        if settings:
            raise ConfigError(f"{where}.settings: unknown key(s) {sorted(settings)} (expected: grid_step_deg)")
        twin = _twin(rig)
        galvo = _device_by_role(rig, "search_galvo", where)
        search = _device_by_role(rig, "search_camera", where)
        sensors = {}
        for role in ("wide_camera", "wide_events"):
            if rig.has_role(role):
                dev = rig.role(role)
                cam, T_cw = twin.camera_model(dev.name)
                sensors[dev.name] = (cam, T_cw[:3, :3])
        if not sensors:
            raise ConfigError(f"{where}: the rig has no wide camera or wide event camera")
        main = rig.role("wide_camera").name if rig.has_role("wide_camera") else next(iter(sensors))
        cam, R = sensors[main]
        return GalvoCameraGeometry(twin.galvo_camera(search.name), cam, galvo.limits_deg, R, grid_step_deg, sensors)


# ------------------------------------------------------------------ ground truth
class TwinGroundTruth:
    """Where every target is, for evaluation (``foveate.system.search.evaluation.GroundTruth``)."""

    def __init__(self, rig, geometry: GalvoCameraGeometry | None = None) -> None:
        self.twin = _twin(rig)
        self.limits_deg = rig.role("search_galvo").limits_deg
        self.geometry = geometry if geometry is not None else TwinGeometry.from_rig(rig, {}, "TwinGroundTruth")
        self.geometry.prepare_inverse()  # evaluation runs inside timed loops: no first-call set-up there

    def targets(self, t_ns: int) -> list[dict]:
        """``{target_id, class_id, cmd: (x, y), half_deg: (w/2, h/2), reachable}`` in command degrees."""
        from foveate.hardware.sim.panorama import az_el_to_dirs

        views = self.twin.scene.target_views(t_ns * 1e-9)
        if not views:
            return []
        dirs = np.array([az_el_to_dirs(*v.centre_deg) for v in views])
        cmd = self.geometry.direction_to_command(dirs)
        (x0, x1), (y0, y1) = self.limits_deg
        out = []
        for v, c in zip(views, cmd):
            ok = bool(np.all(np.isfinite(c))) and x0 <= c[0] <= x1 and y0 <= c[1] <= y1
            # A mechanical degree turns the view by two: half-extents in command degrees are a quarter of the box.
            out.append({"target_id": int(v.id), "class_id": int(v.cls), "cmd": (float(c[0]), float(c[1])),
                        "half_deg": ((v.az_hi - v.az_lo) / 4, (v.el_hi - v.el_lo) / 4), "reachable": ok})
        return out

    def frame_boxes(self, frame) -> list[dict]:
        return frame_boxes(frame)
