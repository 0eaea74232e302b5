"""Run outputs: ``summary.json``, the overview picture, recall plot and an animated GIF of the search.

The overview draws, over the wide camera's last frame, the PPM (heat map of
the square root of the mass, so faint mass stays visible),
the search path (recent views as footprints joined in order) and the
tracks (ellipses at 2 sigma, with ids); beside it the same in mirror-command
space. ``Snapshotter`` records such frames at a fixed clock rate during the
run (bounded count) for ``search.gif``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np

from foveate.system.imaging import label_panel, side_by_side, to_bgr
from foveate.system.search.scheduler import LoopObserver

log = logging.getLogger(__name__)

_PURPOSE_BGR = {"explore": (0, 200, 255), "revisit": (60, 200, 60), "raster": (255, 160, 0), "random": (200, 0, 200)}


def _grid_to_wide_homography(loop) -> np.ndarray | None:
    """Homography from PPM grid indices (col, row) to wide-camera pixels (fit on a coarse grid)."""
    g = loop.ppm.grid if loop.ppm is not None else None
    if g is None:
        return None
    jj, ii = np.meshgrid(np.linspace(0, len(g.xs) - 1, 9), np.linspace(0, len(g.ys) - 1, 9))
    cmd = np.stack([np.interp(jj.ravel(), np.arange(len(g.xs)), g.xs), np.interp(ii.ravel(), np.arange(len(g.ys)), g.ys)], 1)
    uv = loop.geometry.command_to_sensor(cmd, loop.wide_cam.name if loop.wide_cam is not None else None)
    ok = np.all(np.isfinite(uv), axis=1)
    if ok.sum() < 4:
        return None
    H, _ = cv2.findHomography(np.stack([jj.ravel(), ii.ravel()], 1)[ok].astype(np.float32), uv[ok].astype(np.float32))
    return H


class Drawer:
    """Draws the loop's state over the wide view (or a blank canvas in command space)."""

    def __init__(self, loop, width: int = 480) -> None:
        self.loop = loop
        self.H = _grid_to_wide_homography(loop)
        self.width = width
        w, h = loop.geometry.wide_wh
        if loop.wide_cam is not None:
            w, h = loop.wide_cam.width, loop.wide_cam.height
        self.wide_wh = (w, h)

    def to_wide(self, cmd) -> np.ndarray:
        name = self.loop.wide_cam.name if self.loop.wide_cam is not None else None
        return self.loop.geometry.command_to_sensor(np.asarray(cmd, dtype=np.float64).reshape(-1, 2), name)

    def wide_panel(self, t_ns: int, wide_image, mass, recent: int = 24, search_image=None) -> np.ndarray:
        loop = self.loop
        w, h = self.wide_wh
        img = to_bgr(wide_image).copy() if wide_image is not None else np.full((h, w, 3), 235, np.uint8)
        if mass is not None and self.H is not None:
            m = np.sqrt(mass / max(float(mass.max()), 1e-9))  # square root: faint mass stays visible
            warped = cv2.warpPerspective(m.astype(np.float32), self.H, (w, h), flags=cv2.INTER_LINEAR)
            heat = cv2.applyColorMap((np.clip(warped, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
            a = (0.65 * np.clip(warped, 0, 1))[..., None]
            img = (img * (1 - a) + heat * a).astype(np.uint8)
        fx, fy = loop.footprint_half
        path = [p for p in loop.path if p[0] <= t_ns][-recent:]
        pts = []
        for k, (_, x, y, purpose) in enumerate(path):
            corners = self.to_wide([(x - fx, y - fy), (x + fx, y - fy), (x + fx, y + fy), (x - fx, y + fy)])
            c = self.to_wide([(x, y)])[0]
            if not np.all(np.isfinite(corners)):
                continue
            fade = 0.3 + 0.7 * (k + 1) / len(path)
            col = tuple(int(v * fade) for v in _PURPOSE_BGR.get(purpose, (255, 255, 255)))
            cv2.polylines(img, [corners.astype(np.int32)], True, col, 1, cv2.LINE_AA)
            pts.append(c)
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, (255, 255, 255), 1, cv2.LINE_AA)
        for tr in loop.tracker.tracks:
            mu, P = tr.predict(t_ns)
            c = self.to_wide(mu[:2])[0]
            if not np.all(np.isfinite(c)):
                continue
            ex = self.to_wide(mu[:2] + [2 * np.sqrt(P[0, 0]), 0])[0] - c
            ey = self.to_wide(mu[:2] + [0, 2 * np.sqrt(P[1, 1])])[0] - c
            ax = (max(2, int(abs(ex[0]) + abs(ex[1]))), max(2, int(abs(ey[0]) + abs(ey[1]))))
            col = (0, 255, 0) if tr.confirmed else (0, 255, 255)
            cv2.ellipse(img, (int(c[0]), int(c[1])), ax, 0, 0, 360, col, 1, cv2.LINE_AA)
            cv2.putText(img, str(tr.id), (int(c[0]) + 4, int(c[1]) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, col, 1, cv2.LINE_AA)
        if search_image is not None:
            th = max(64, h // 4)
            thumb = cv2.resize(to_bgr(search_image), (th, th), interpolation=cv2.INTER_AREA)
            img[4:4 + th, w - th - 4:w - 4] = thumb
            cv2.rectangle(img, (w - th - 5, 3), (w - 4, 4 + th), (255, 255, 255), 1)
        cv2.putText(img, f"t = {(t_ns - loop.t_start_ns) * 1e-9:6.3f} s  [{loop.kind}]  frames {loop.frames}", (6, h - 8),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return img

    def command_panel(self, t_ns: int, mass, size: int = 360) -> np.ndarray:
        """The map and the whole search path in command space (x right, y up)."""
        loop = self.loop
        (x0, x1), (y0, y1) = loop.galvo.limits_deg
        W = size * 4 // 3
        s = min(W / (x1 - x0), size / (y1 - y0))
        W, H = int((x1 - x0) * s), int((y1 - y0) * s)
        # Drawn as the view sees it: flip an axis whose command turns the view left (or down).
        J = loop.geometry.search_jacobian(np.array([[(x0 + x1) / 2, (y0 + y1) / 2]]))[0]
        flip_x, flip_y = J[0, 0] < 0, J[1, 1] > 0
        if mass is not None:
            m = np.sqrt(mass / max(float(mass.max()), 1e-9))
            m = np.flipud(m) if not flip_y else m
            m = np.fliplr(m) if flip_x else m
            img = cv2.applyColorMap((np.clip(m, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
            img = cv2.resize(img, (W, H), interpolation=cv2.INTER_NEAREST)
        else:
            img = np.full((H, W, 3), 30, np.uint8)

        def to_px(x, y):
            u = (x1 - x) * s if flip_x else (x - x0) * s
            v = (y - y0) * s if flip_y else (y1 - y) * s
            return int(u), int(v)

        path = [p for p in loop.path if p[0] <= t_ns]
        for a, b in zip(path, path[1:]):
            cv2.line(img, to_px(a[1], a[2]), to_px(b[1], b[2]), (180, 180, 180), 1, cv2.LINE_AA)
        for p in path[-200:]:
            cv2.circle(img, to_px(p[1], p[2]), 2, _PURPOSE_BGR.get(p[3], (255, 255, 255)), -1)
        for tr in loop.tracker.tracks:
            mu, _ = tr.predict(t_ns)
            cv2.circle(img, to_px(mu[0], mu[1]), 6, (0, 255, 0) if tr.confirmed else (0, 255, 255), 1, cv2.LINE_AA)
        return img


class Snapshotter(LoopObserver):
    """Frames of the running search for the animated GIF, every ``period_s`` of clock time."""

    def __init__(self, period_s: float = 0.05, max_frames: int = 80, width: int = 480) -> None:
        self.period_ns = int(period_s * 1e9)
        self.max_frames = max_frames
        self.width = width
        self.frames: list[np.ndarray] = []
        self._next = 0
        self._drawer: Drawer | None = None
        self._last_search = None

    def on_start(self, loop) -> None:
        self._drawer = Drawer(loop)
        self._next = loop.clock.now_ns()

    def on_frame(self, frame, state, view) -> None:
        self._last_search = frame.image

    def on_tick(self, loop, t_ns: int) -> None:
        if t_ns < self._next or len(self.frames) >= self.max_frames:
            return
        self._next = t_ns + self.period_ns
        mass = loop.ppm.mass(t_ns, loop.tracker.tracks, loop.footprint_half) if loop.ppm is not None else None
        wide = loop.last_wide.image if loop.last_wide is not None else None
        img = self._drawer.wide_panel(t_ns, wide, mass, search_image=self._last_search)
        scale = self.width / img.shape[1]
        self.frames.append(cv2.resize(img, (self.width, int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA))


def write_gif(frames: list[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    from PIL import Image

    ims = [Image.fromarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)).convert("P", palette=Image.ADAPTIVE, colors=128)
           for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0, optimize=False)
    return path


def recall_plot(samples: list, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in samples]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(t, [s[1] for s in samples], label="found (detected at least once)")
    ax.plot(t, [s[2] for s in samples], label="tracked now (confirmed track on target)")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("recall of reachable targets")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_outputs(loop, out_dir: Path, evaluation: dict | None = None, snapshotter: Snapshotter | None = None,
                  extra: dict | None = None) -> tuple[dict, list[Path]]:
    """Write ``summary.json``, ``overview.png``, ``recall.png`` (with evaluation) and ``search.gif``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = loop.summary()
    if evaluation is not None:
        summary["evaluation"] = evaluation
    if extra:
        summary.update(extra)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    pictures: list[Path] = []
    t = loop.t_end_ns
    d = Drawer(loop)
    mass = loop.ppm.mass(t, loop.tracker.tracks, loop.footprint_half) if loop.ppm is not None else None
    wide = loop.last_wide.image if loop.last_wide is not None else None
    panels = [label_panel(d.wide_panel(t, wide, mass, recent=40), "wide view: PPM, recent views, tracks", 360),
              label_panel(d.command_panel(t, mass), "mirror-command grid: PPM and the whole search path", 360)]
    p = out_dir / "overview.png"
    cv2.imwrite(str(p), side_by_side(panels))
    pictures.append(p)
    if evaluation is not None and evaluation.get("recall_over_time"):
        pictures.append(recall_plot(evaluation["recall_over_time"], out_dir / "recall.png",
                                    f"{loop.kind} loop on {loop.rig.config.name}: recall over time"))
    if snapshotter is not None and snapshotter.frames:
        pictures.append(write_gif(snapshotter.frames, out_dir / "search.gif"))
    return summary, pictures


def has_gui() -> bool:
    """Whether this OpenCV build can open windows (the ``GUI:`` line of its build information)."""
    import re

    m = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.M)
    return m is not None and m.group(1).upper() != "NONE"


class LiveWindow(LoopObserver):
    """``--show``: the wide view with the map, path and tracks in an OpenCV window, ~20 times per clock second."""

    def __init__(self, period_s: float = 0.05, title: str = "foveate search") -> None:
        from foveate.system.errors import FoveateError

        if not has_gui():
            raise FoveateError("--show needs an OpenCV build with a GUI (pip install opencv-python instead of "
                               "opencv-python-headless); use --out DIR and open search.gif instead")
        self.period_ns = int(period_s * 1e9)
        self.title = title
        self._next = 0
        self._drawer: Drawer | None = None
        self._last_search = None

    def on_start(self, loop) -> None:
        self._drawer = Drawer(loop)

    def on_frame(self, frame, state, view) -> None:
        self._last_search = frame.image

    def on_tick(self, loop, t_ns: int) -> None:
        if t_ns < self._next:
            return
        self._next = t_ns + self.period_ns
        mass = loop.ppm.mass(t_ns, loop.tracker.tracks, loop.footprint_half) if loop.ppm is not None else None
        wide = loop.last_wide.image if loop.last_wide is not None else None
        cv2.imshow(self.title, self._drawer.wide_panel(t_ns, wide, mass, search_image=self._last_search))
        cv2.waitKey(1)

    def on_end(self, loop) -> None:
        cv2.destroyWindow(self.title)
