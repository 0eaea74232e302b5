"""Search-camera training and evaluation views from the digital twin, deterministic by seed.

Views are taken the way the running system takes them: a simulated rig (built from a
rig dict by :class:`foveate.system.rig.Rig`, never by importing the simulator) whose
search galvo is commanded either at a target seen by the wide camera (with a random
offset, so targets are cut by the view's edge) or at a random place (clutter and empty
views). Each world (a rig with its own seed, target counts, scene and search field of
view, so targets appear at varied scale) gives ``views_per_world`` views; between views
the clock runs on (targets move), the exposure changes, and some frames are read while
the mirror is still moving (the twin blurs those).

Ground truth comes from the search frame's ``meta["boxes"]`` (class, target id, box in
pixels ``x0, y0, x1, y1`` with pixel ``(u, v)`` spanning ``[u, u+1) x [v, v+1)``,
visible fraction). A twin that does not publish boxes yet is handled by deriving them
from ``meta["labels"]`` (connected components of the human and vehicle classes,
visible fraction unknown, recorded as 1); the dataset records which source it used and
is regenerated when the twin starts publishing boxes.

Datasets are cached as ``.npz`` under ``.cache/detector/`` (ignored by git), keyed by a
hash of the spec.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from foveate.models.detector.config import CLASSES
from foveate.system.config import default_rig_path, parse_rig
from foveate.system.errors import ConfigError, FoveateError
from foveate.system.rig import Rig

log = logging.getLogger(__name__)

GENERATOR_VERSION = 2
# The twin's label ids follow DDD17's six classes (flat, construction+sky, object, nature, human, vehicle).
TWIN_LABEL_IDS = {"human": 4, "vehicle": 5}
DEFAULT_CACHE = Path(".cache/detector")
SCENES = ("street", "parking_lot", "plaza")

# Named splits: disjoint world seeds, so calibration and test views never share a world with training.
SPLIT_SEEDS = {"train": 1_000, "calib": 2_000, "test": 3_000}


@dataclass(frozen=True)
class ViewSpec:
    """What to generate. Everything that changes the data is here, so its hash keys the cache."""

    n_views: int
    seed: int
    size: int = 256
    views_per_world: int = 32  # a world's panorama is rendered once, then reused: more views per world is cheaper
    hfov_deg: tuple[float, float] = (2.5, 7.5)  # search field of view, log-uniform per world
    exposure_s: tuple[float, float] = (0.3e-3, 3e-3)  # log-uniform per view
    aim_fraction: float = 0.75  # views aimed at a target seen by the wide camera; the rest random
    moving_fraction: float = 0.25  # views read without waiting for the mirror to settle
    humans: tuple[int, int] = (4, 16)
    vehicles: tuple[int, int] = (2, 8)
    scenes: tuple[str, ...] = SCENES

    def key(self) -> str:
        text = json.dumps({"v": GENERATOR_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def split(cls, name: str, n_views: int, **kw: Any) -> "ViewSpec":
        if name not in SPLIT_SEEDS:
            raise ConfigError(f"unknown split '{name}' (expected one of: {', '.join(SPLIT_SEEDS)})")
        return cls(n_views=n_views, seed=SPLIT_SEEDS[name], **kw)


@dataclass
class ViewSet:
    """Images ``(N, H, W)`` uint8 and per-view ground truth.

    ``boxes`` is a table ``(M, 7)`` float32: view index, class index (into
    :data:`CLASSES`), x0, y0, x1, y1 (pixels), visible fraction.
    """

    images: np.ndarray
    boxes: np.ndarray
    info: list[dict] = field(default_factory=list)
    box_source: str = "meta"
    spec: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def targets(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(boxes (n, 4) xyxy, classes (n,), visible (n,)) of view ``i``."""
        rows = self.boxes[self.boxes[:, 0] == i]
        return rows[:, 2:6].copy(), rows[:, 1].astype(np.int64), rows[:, 6].copy()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, images=self.images, boxes=self.boxes,
                            info=np.array(json.dumps({"info": self.info, "box_source": self.box_source,
                                                      "spec": self.spec})))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "ViewSet":
        try:
            with np.load(path) as z:
                images, boxes, info = z["images"], z["boxes"], json.loads(str(z["info"]))
        except (OSError, KeyError, ValueError) as exc:
            raise FoveateError(f"{path}: not a detector view set ({exc})") from None
        if images.ndim != 3 or boxes.ndim != 2 or boxes.shape[1] != 7:
            raise FoveateError(f"{path}: bad shapes images {images.shape}, boxes {boxes.shape}")
        return cls(images, boxes, info["info"], info["box_source"], info["spec"])


# ------------------------------------------------------------------------ ground truth
def _pick(d: dict, names: Iterable[str]) -> Any:
    for n in names:
        if n in d:
            return d[n]
    return None


def boxes_from_meta(meta: dict, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Ground truth of one search frame: (boxes (n,4), classes (n,), visible (n,), source).

    Uses ``meta["boxes"]`` when the twin publishes it, else the label map. Boxes are
    clipped to the image; classes other than :data:`CLASSES` are skipped.
    """
    h, w = shape
    boxes, classes, visible = [], [], []
    if "boxes" in meta:
        source = "meta"
        for k, b in enumerate(meta["boxes"]):
            if not isinstance(b, dict):
                raise FoveateError(f"frame meta boxes[{k}]: expected a dict, got {type(b).__name__}")
            name = _pick(b, ("class_name", "label", "name"))
            if name is None:
                cid = _pick(b, ("class_id", "cls", "class"))
                name = {v: k2 for k2, v in TWIN_LABEL_IDS.items()}.get(int(cid)) if cid is not None else None
            if name not in CLASSES:
                continue
            xyxy = _pick(b, ("box_xyxy", "box", "xyxy", "bbox"))
            if xyxy is None and all(k2 in b for k2 in ("x0", "y0", "x1", "y1")):
                xyxy = (b["x0"], b["y0"], b["x1"], b["y1"])
            if xyxy is None or len(xyxy) != 4:
                raise FoveateError(f"frame meta boxes[{k}]: no box (expected 'box' = [x0, y0, x1, y1]), keys {sorted(b)}")
            vis = _pick(b, ("visible_fraction", "visible_frac", "visible", "visibility"))
            boxes.append([float(v) for v in xyxy])
            classes.append(CLASSES.index(name))
            visible.append(1.0 if vis is None else float(vis))
    else:
        source = "labels"
        labels = meta.get("labels")
        if labels is None:
            raise FoveateError("search frame has neither meta['boxes'] nor meta['labels']: no ground truth")
        for ci, name in enumerate(CLASSES):
            mask = (np.asarray(labels) == TWIN_LABEL_IDS[name]).astype(np.uint8)
            if not mask.any():
                continue
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
            for s in stats[1:n]:
                x, y, bw, bh, area = (int(v) for v in s)
                if area < 4:
                    continue
                boxes.append([x, y, x + bw, y + bh])
                classes.append(ci)
                visible.append(1.0)
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    keep = (b[:, 2] - b[:, 0] >= 1) & (b[:, 3] - b[:, 1] >= 1)
    return b[keep], np.asarray(classes, np.int64)[keep], np.asarray(visible, np.float32)[keep], source


# ----------------------------------------------------------------------------- rigs
def _twin_rig(seed: int, size: int, hfov_deg: float, n_humans: int, n_vehicles: int, scene: str | None) -> Rig:
    """A rig with the default rig's galvo, a small wide camera for aiming and a square search camera."""
    import yaml

    base = yaml.safe_load(default_rig_path().read_text())
    devs = base["devices"]
    galvo_name = next(n for n, d in devs.items() if d.get("role") == "search_galvo")
    search_name = next(n for n, d in devs.items() if d.get("role") == "search_camera")
    wide_name = next(n for n, d in devs.items() if d.get("role") == "wide_camera")
    wide = dict(devs[wide_name])
    wide["settings"] = {**wide.get("settings", {}), "width": 320, "height": 240}
    search = dict(devs[search_name])
    search["settings"] = {**search.get("settings", {}), "width": size, "height": size, "hfov_deg": float(hfov_deg),
                          "seed": seed % 2**31}
    sim = {**base.get("sim", {}), "seed": seed % 2**31, "n_humans": n_humans, "n_vehicles": n_vehicles}
    if scene is not None:
        sim["scene"] = scene
    data = {"name": f"detector-data-{seed}", "sim": sim,
            "devices": {wide_name: wide, galvo_name: devs[galvo_name], search_name: search}}
    # The default rig's search geometry when it names one by backend (the twin's true geometry), for aiming.
    geometry = (base.get("calibration") or {}).get("search_geometry")
    if isinstance(geometry, dict) and "backend" in geometry:
        data["calibration"] = {"search_geometry": geometry}
    return Rig(parse_rig(data, source=f"<detector data rig seed {seed}>"))


def _open_world(seed: int, spec: ViewSpec, rng: np.random.Generator) -> tuple[Rig, dict]:
    lo, hi = spec.hfov_deg
    hfov = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    nh = int(rng.integers(spec.humans[0], spec.humans[1] + 1))
    nv = int(rng.integers(spec.vehicles[0], spec.vehicles[1] + 1))
    scene = str(rng.choice(spec.scenes)) if spec.scenes else None
    try:
        rig = _twin_rig(seed, spec.size, hfov, nh, nv, scene)
        rig.open()
    except ConfigError as exc:
        if scene is None or "scene" not in str(exc):
            raise
        log.info("the twin has no sim.scene yet (%s); using its default scene", exc)
        scene = None
        rig = _twin_rig(seed, spec.size, hfov, nh, nv, None)
        rig.open()
    return rig, {"world_seed": seed, "hfov_deg": hfov, "n_humans": nh, "n_vehicles": nv, "scene": scene}


def _pick_wide_target(frame, rng: np.random.Generator) -> np.ndarray | None:
    """(u, v) centre of one target of a wide frame (from its ground truth), or None when it shows none.

    The class is drawn first, uniformly among those present, so the rarer vehicles are
    seen about as often as people.
    """
    b, c, _, _ = boxes_from_meta(frame.meta, frame.image.shape[:2])
    if not len(b):
        return None
    cls = rng.choice(np.unique(c))
    i = rng.choice(np.nonzero(c == cls)[0])
    return np.array([(b[i, 0] + b[i, 2]) / 2, (b[i, 1] + b[i, 3]) / 2])


class _Aim:
    """Mirror command that centres a wide-camera pixel, by inverting the rig's search geometry
    (``command_to_wide``) on a grid of commands plus two Newton steps."""

    def __init__(self, rig) -> None:
        from foveate.system.search.components import build_geometry

        self.geometry = build_geometry(rig)
        (x0, x1), (y0, y1) = rig.role("search_galvo").limits_deg
        gx, gy = np.meshgrid(np.arange(x0, x1 + 1e-9, 0.5), np.arange(y0, y1 + 1e-9, 0.5))
        self.grid = np.stack([gx.ravel(), gy.ravel()], 1)
        self.grid_uv = self.geometry.command_to_wide(self.grid)
        ok = np.all(np.isfinite(self.grid_uv), 1)
        self.grid, self.grid_uv = self.grid[ok], self.grid_uv[ok]

    def command(self, uv: np.ndarray) -> np.ndarray | None:
        if not len(self.grid):
            return None
        cmd = self.grid[np.argmin(np.sum((self.grid_uv - uv) ** 2, 1))].astype(np.float64)
        h = 0.02
        for _ in range(2):
            pts = np.array([cmd, cmd + (h, 0), cmd + (0, h)])
            f = self.geometry.command_to_wide(pts)
            if not np.all(np.isfinite(f)):
                break
            J = np.stack([(f[1] - f[0]) / h, (f[2] - f[0]) / h], 1)
            try:
                cmd = cmd + np.linalg.solve(J, uv - f[0])
            except np.linalg.LinAlgError:
                break
        return cmd


def _world_views(child: np.random.SeedSequence, n: int, spec: ViewSpec) -> tuple[np.ndarray, list, list, set]:
    """The ``n`` views of one world (its own rig, seeded by ``child``): images, box rows with the view's
    index within the world, per-view info, and the ground-truth sources seen."""
    rng = np.random.default_rng(child)
    images = np.zeros((n, spec.size, spec.size), np.uint8)
    rows: list[list[float]] = []
    info: list[dict] = []
    sources: set[str] = set()
    rig, winfo = _open_world(int(child.generate_state(1)[0]), spec, rng)
    try:
        galvo, cam, wide = rig.role("search_galvo"), rig.role("search_camera"), rig.role("wide_camera")
        (lx0, lx1), (ly0, ly1) = galvo.limits_deg
        aim = _Aim(rig)
        for i in range(n):
            rig.clock.sleep_ns(int(rng.uniform(0.0, 1.5) * 1e9))
            aimed = bool(rng.random() < spec.aim_fraction)
            uv = _pick_wide_target(wide.read(1.0), rng) if aimed else None
            cmd = aim.command(uv) if uv is not None else None
            if cmd is not None:
                # Off-centre by up to 0.45 of the view (a mechanical degree turns the view by two),
                # so targets are also seen cut by the image border.
                j = 0.45 * winfo["hfov_deg"] / 2
                tx, ty = cmd[0] + rng.uniform(-j, j), cmd[1] + rng.uniform(-j, j)
            else:
                aimed = False
                tx, ty = rng.uniform(lx0, lx1), rng.uniform(ly0, ly1)
            tx = float(np.clip(tx, lx0 * 0.98, lx1 * 0.98))
            ty = float(np.clip(ty, ly0 * 0.98, ly1 * 0.98))
            lo, hi = spec.exposure_s
            exposure = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
            cam.set_exposure(exposure)
            galvo.move_to(tx, ty)
            moving = bool(rng.random() < spec.moving_fraction)
            if not moving:
                galvo.wait_settled(0.1)
            frame = cam.read(1.0)
            img = frame.image if frame.image.ndim == 2 else cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY)
            if img.shape != (spec.size, spec.size):
                raise FoveateError(f"search camera gave {img.shape}, expected {(spec.size, spec.size)}")
            images[i] = img
            b, c, vis, src = boxes_from_meta(frame.meta, img.shape)
            sources.add(src)
            for bb, cc, vv in zip(b, c, vis):
                rows.append([i, cc, *bb, vv])
            info.append({**winfo, "exposure_s": exposure, "aimed": aimed, "moving": moving,
                         "galvo_deg": [tx, ty]})
    finally:
        rig.close()
    return images, rows, info, sources


def generate_views(spec: ViewSpec, progress: bool = True, workers: int = 1) -> ViewSet:
    """Render ``spec.n_views`` search views with ground truth (deterministic for a given spec).

    Worlds are independent (each has its own child seed), so ``workers > 1`` renders them in that many
    processes; the result is the same array, assembled in world order."""
    from tqdm import tqdm

    root = np.random.SeedSequence(spec.seed)
    n_worlds = -(-spec.n_views // spec.views_per_world)
    counts = [min(spec.views_per_world, spec.n_views - w * spec.views_per_world) for w in range(n_worlds)]
    jobs = list(zip(root.spawn(n_worlds), counts))
    images = np.zeros((spec.n_views, spec.size, spec.size), np.uint8)
    rows: list[list[float]] = []
    info: list[dict] = []
    sources: set[str] = set()
    bar = tqdm(total=spec.n_views, desc=f"twin views seed {spec.seed}", unit="view", disable=not progress,
               leave=False)
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
        results = pool.map(_world_views, [c for c, _ in jobs], [n for _, n in jobs], [spec] * len(jobs))
    else:
        pool = None
        results = (_world_views(c, n, spec) for c, n in jobs)
    i = 0
    try:
        for im, r, inf, src in results:
            images[i:i + len(im)] = im
            rows.extend([i + row[0], *row[1:]] for row in r)
            info.extend(inf)
            sources |= src
            i += len(im)
            bar.update(len(im))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    bar.close()
    box_source = "meta" if sources == {"meta"} else "labels" if sources == {"labels"} else "mixed"
    return ViewSet(images, np.asarray(rows, np.float32).reshape(-1, 7), info, box_source, asdict(spec))


def twin_publishes_boxes() -> bool:
    """Whether the twin's search frames carry ``meta['boxes']`` (checked on one frame)."""
    spec = ViewSpec(n_views=1, seed=0, views_per_world=1)
    rig, _ = _open_world(0, spec, np.random.default_rng(0))
    try:
        return "boxes" in rig.role("search_camera").read(1.0).meta
    finally:
        rig.close()


def load_views(spec: ViewSpec, cache_dir: Path | None = DEFAULT_CACHE, progress: bool = True,
               workers: int = 1) -> ViewSet:
    """The views of ``spec``, from the cache when present (and still current), else generated and cached."""
    if cache_dir is None:
        return generate_views(spec, progress, workers)
    path = Path(cache_dir) / f"views-{spec.seed}-{spec.n_views}-{spec.key()}.npz"
    if path.is_file():
        vs = ViewSet.load(path)
        if vs.box_source == "meta" or not twin_publishes_boxes():
            return vs
        log.info("%s: derived from label maps but the twin now publishes boxes: regenerating", path)
    vs = generate_views(spec, progress, workers)
    vs.save(path)
    return vs
