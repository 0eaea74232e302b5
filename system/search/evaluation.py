"""Search metrics against ground truth, for rigs that have it (the twin).

The loop never sees ground truth: this observer gets it from a
``GroundTruth`` provider (``foveate.hardware.sim.oracle.TwinGroundTruth`` on
the twin) and scores what the loop did:

* **time to first detection** of each target visible at the start: from the
  start of the run to the moment the first detection that lies on it (its centre inside the
  target's true box in that frame, same class) comes out of the detector;
* **found recall over time**: among the targets visible at time t (within
  the mirror's reach, and at least ``min_visible`` of them unhidden in the
  wide camera's latest frame), the share detected at least once by t;
* **tracked recall over time**: the share with a confirmed track whose
  predicted position lies within the target's extent (plus ``tol_deg``);
* false detections (on no target).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from foveate.system.search.scheduler import LoopObserver


class GroundTruth(Protocol):
    def targets(self, t_ns: int) -> list[dict]:
        """``{target_id, class_id, cmd: (x, y), half_deg: (hw, hh), reachable}`` in command degrees."""
        ...

    def frame_boxes(self, frame) -> list[dict]:
        """``{class_id, target_id, box: [x0, y0, x1, y1], visible_frac}`` in the frame's pixels."""
        ...


class Evaluator(LoopObserver):
    def __init__(self, truth: GroundTruth, class_ids: dict[str, int], sample_s: float = 0.05, tol_deg: float = 0.3,
                 min_visible: float = 0.3) -> None:
        self.truth = truth
        self.class_ids = class_ids  # detector label -> scene class id
        self.sample_ns = int(sample_s * 1e9)
        self.tol_deg = float(tol_deg)
        self.first_ns: dict[int, int] = {}
        self.detections = 0
        self.false_detections = 0
        self.samples: list[tuple[float, float, float, int]] = []  # (t_s, found recall, tracked recall, n visible)
        self.t0 = 0
        self._next = 0
        self.ever_visible: set[int] = set()
        self.visible_ids: set[int] | None = None  # None: no wide camera, every reachable target counts
        self.min_visible = float(min_visible)
        self.classes: dict[int, int] = {}

    _loop = None

    def on_wide_frame(self, frame) -> None:
        # Which targets the wide camera sees (not hidden behind the scene), from its ground-truth boxes.
        if "boxes" not in (frame.meta or {}):
            return
        self.visible_ids = {b["target_id"] for b in self.truth.frame_boxes(frame)
                            if b.get("visible_frac", 1.0) >= self.min_visible}

    def on_start(self, loop) -> None:
        self._loop = loop
        self.t0 = self._next = loop.clock.now_ns()
        self.initial_ids: set[int] | None = None
        self.first_visible_ns: dict[int, int] = {}

    def on_frame(self, frame, state, view) -> None:
        if self.initial_ids is None:  # the first sample waits for the wide camera's first frame
            self._sample(self._loop, self.t0)

    def on_detections(self, frame, state, view, detections, measurements, update, done_ns) -> None:
        boxes = self.truth.frame_boxes(frame) if detections else ()  # ground truth is costly on the twin
        for d in detections:
            self.detections += 1
            cid = self.class_ids.get(d.label, -1)
            x, y = d.centre_xy
            hit, best = None, -1.0
            for b in boxes:  # the most visible of the boxes under the detection (a hidden one may lie behind)
                x0, y0, x1, y1 = b["box"]
                if b["class_id"] == cid and x0 <= x <= x1 and y0 <= y <= y1 and b.get("visible_frac", 1.0) > best:
                    hit, best = b["target_id"], b.get("visible_frac", 1.0)
            if hit is None:
                self.false_detections += 1
            elif hit not in self.first_ns:
                self.first_ns[hit] = done_ns

    def _sample(self, loop, t_ns: int) -> None:
        tg = [t for t in self.truth.targets(t_ns)
              if t["reachable"] and (self.visible_ids is None or t["target_id"] in self.visible_ids)]
        if self.initial_ids is None:
            self.initial_ids = {t["target_id"] for t in tg}
        for t in tg:
            self.ever_visible.add(t["target_id"])
            self.first_visible_ns.setdefault(t["target_id"], t_ns)
            self.classes[t["target_id"]] = t["class_id"]
        if not tg:
            self.samples.append(((t_ns - self.t0) * 1e-9, 1.0, 1.0, 0))
            return
        found = sum(1 for t in tg if t["target_id"] in self.first_ns and self.first_ns[t["target_id"]] <= t_ns)
        preds = [(tr.predict(t_ns)[0][:2], tr.label) for tr in loop.tracker.confirmed()]
        tracked = 0
        for t in tg:
            cx, cy = t["cmd"]
            hw, hh = t["half_deg"]
            for mu, label in preds:
                if self.class_ids.get(label) == t["class_id"] and abs(mu[0] - cx) <= hw + self.tol_deg \
                        and abs(mu[1] - cy) <= hh + self.tol_deg:
                    tracked += 1
                    break
        self.samples.append(((t_ns - self.t0) * 1e-9, found / len(tg), tracked / len(tg), len(tg)))

    def on_tick(self, loop, t_ns: int) -> None:
        self._loop = loop
        while t_ns >= self._next + self.sample_ns:
            self._next += self.sample_ns
            self._sample(loop, self._next)

    def on_end(self, loop) -> None:
        self._sample(loop, loop.t_end_ns)

    def recall_at(self, t_s: float, which: int = 1) -> float | None:
        """Found (``which=1``) or tracked (2) recall at the last sample at or before ``t_s``."""
        best = None
        for s in self.samples:
            if s[0] <= t_s + 1e-9:
                best = s[which]
        return best

    def summary(self, run_s: float) -> dict:
        initial = self.initial_ids or set()
        ttfd = {tid: (self.first_ns[tid] - self.t0) * 1e-9 for tid in self.first_ns if tid in initial}
        per_target = {str(tid): (round(ttfd[tid], 6) if tid in ttfd else None) for tid in sorted(initial)}
        censored = [ttfd.get(tid, run_s) for tid in initial]
        late = sorted(self.ever_visible - initial)
        late_delay = {str(tid): (round((self.first_ns[tid] - self.first_visible_ns[tid]) * 1e-9, 6)
                                 if tid in self.first_ns else None) for tid in late}
        return {
            "targets_total": len(initial),
            "targets_found": len(ttfd),
            "time_to_first_detection_s": per_target,
            "mean_ttfd_found_s": round(float(np.mean(list(ttfd.values()))), 6) if ttfd else None,
            "mean_ttfd_s": round(float(np.mean(censored)), 6) if censored else None,
            "all_found_s": round(max(ttfd.values()), 6) if ttfd and len(ttfd) == len(initial) else None,
            "late_targets_delay_s": late_delay,
            "recall_found_at_1s": self.recall_at(1.0, 1),
            "recall_tracked_at_end": self.samples[-1][2] if self.samples else None,
            "recall_over_time": [[round(t, 4), round(f, 4), round(k, 4), n] for t, f, k, n in self.samples],
            "detections": self.detections,
            "false_detections": self.false_detections,
            "note": ("targets_total: targets visible when the run starts (time to first detection is theirs; a target "
                     "never found counts as the run length); late_targets_delay_s: targets that became visible later, "
                     "detection delay after they appeared"),
        }
