"""Datasets for SLTNet in their official layouts, plus the cached digital-twin set.

Every dataset yields ``(voxel [bins, H, W] float32, labels [H, W] uint8)`` already at the
model's input size; 255 marks pixels to ignore.

**DDD17 (ESS release)**: ``root/dir*/`` each with ``events.dat.t`` (int64 ns), ``events.dat.xyp``
(int16 x, y, p∈{0,1}), ``index/index_{10,50,250}ms.npy`` (rows ``t_ns, end_idx, start_idx``, row
k-1 for image k) and ``segmentation_masks/segmentation_<k>.png`` (200 rows, the car hood already
removed). Split over the sorted ``dir*`` (ESS/SLTNet): train 0,2,3,5,6; valid 1; test 4. The
window is the index's fixed duration (50 ms); the 260x346 voxel grid is cropped to its top 200
rows and resized to 200x352.

**DSEC-Semantic**: sequences ``<seq>/`` (found under ``root/``, ``root/train/`` or ``root/test/``)
each with ``events/left/events.h5`` (``events/{x,y,p,t}``, ``ms_to_idx``, ``t_offset``),
``events/left/rectify_map.h5`` (``rectify_map`` 480x640x2), ``semantic/timestamps.txt`` (µs)
and ``semantic/{11classes,19classes}/data/%06d.png`` (440x640). The window is the last 100,000
events before each label; the first 6 labels of a sequence are dropped and every 2nd used (as
the official loader). Rectified coordinates are rounded to the nearest pixel (the official
loader splats them bilinearly); the 480x640 grid loses its bottom 40 rows.
"""

from __future__ import annotations

import glob
from pathlib import Path

import cv2
import numpy as np

from foveate.models.sltnet.preprocess import events_to_input, resize_labels
from foveate.system.errors import ConfigError
from foveate.system.types import EVENT_DTYPE

DDD17_SENSOR_HW = (260, 346)
DDD17_CROP_BOTTOM = 60
DDD17_SPLITS = {"train": (0, 2, 3, 5, 6), "valid": (1,), "test": (4,)}
DSEC_SENSOR_HW = (480, 640)
DSEC_CROP_BOTTOM = 40
DSEC_SPLITS = {
    "train": ("zurich_city_00_a", "zurich_city_01_a", "zurich_city_02_a", "zurich_city_04_a",
              "zurich_city_05_a", "zurich_city_06_a", "zurich_city_07_a", "zurich_city_08_a"),
    "valid": ("zurich_city_13_a", "zurich_city_14_c", "zurich_city_15_a"),
}
DSEC_SKIP_FIRST_LABELS = 6


class SegmentationDataset:
    """Base: ``len`` and indexing (augmentation is the trainer's job, so it is seeded per epoch)."""

    def __init__(self, height: int, width: int, bins: int) -> None:
        self.height, self.width, self.bins = height, width, bins

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.load(i)


class DDD17Dataset(SegmentationDataset):
    def __init__(self, root: str | Path, split: str = "train", bins: int = 5, height: int = 200, width: int = 352,
                 window_ms: int = 50) -> None:
        super().__init__(height, width, bins)
        root = Path(root)
        if split not in DDD17_SPLITS:
            raise ConfigError(f"DDD17 split '{split}' unknown (expected one of: {', '.join(DDD17_SPLITS)})")
        if window_ms not in (10, 50, 250):
            raise ConfigError(f"DDD17 window {window_ms} ms: the ESS index files exist for 10, 50 and 250 ms")
        dirs = sorted(Path(p) for p in glob.glob(str(root / "dir*")) if Path(p).is_dir())
        if len(dirs) < 7:
            raise ConfigError(f"{root}: expected the 7 ESS DDD17 folders dir*/, found {len(dirs)}")
        self.dirs = [dirs[i] for i in DDD17_SPLITS[split]]
        self._events: dict[Path, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.samples: list[tuple[Path, Path, int]] = []
        for d in self.dirs:
            t_file, xyp_file = d / "events.dat.t", d / "events.dat.xyp"
            idx_file = d / "index" / f"index_{window_ms}ms.npy"
            for f in (t_file, xyp_file, idx_file):
                if not f.is_file():
                    raise ConfigError(f"{f}: missing (DDD17/ESS layout)")
            n = t_file.stat().st_size // 8
            if xyp_file.stat().st_size != n * 6:
                raise ConfigError(f"{xyp_file}: {xyp_file.stat().st_size} bytes, expected {n * 6} "
                                  f"(3 x int16 per event for the {n} events of events.dat.t)")
            t = np.memmap(t_file, dtype="<i8", mode="r", shape=(n,))
            xyp = np.memmap(xyp_file, dtype="<i2", mode="r", shape=(n, 3))
            index = np.load(idx_file)
            if index.ndim != 2 or index.shape[1] != 3:
                raise ConfigError(f"{idx_file}: expected rows (t_ns, end_idx, start_idx), got shape {index.shape}")
            self._events[d] = (t, xyp, index)
            for mask in sorted((d / "segmentation_masks").glob("*.png")):
                try:
                    k = int(mask.stem.split("_")[-1]) - 1
                except ValueError:
                    raise ConfigError(f"{mask}: mask name must end in _<image number>.png") from None
                if not 0 <= k < len(index):
                    raise ConfigError(f"{mask}: image {k + 1} has no row in {idx_file} ({len(index)} rows)")
                self.samples.append((d, mask, k))
        if not self.samples:
            raise ConfigError(f"{root}: no segmentation_masks/*.png in the {split} folders")

    def __len__(self) -> int:
        return len(self.samples)

    def events(self, i: int) -> np.ndarray:
        d, _, k = self.samples[i]
        t, xyp, index = self._events[d]
        _, end, start = (int(v) for v in index[k])
        start = max(start, 0)
        ev = np.empty(end - start, EVENT_DTYPE)
        ev["t"] = np.asarray(t[start:end]) // 1000
        chunk = np.asarray(xyp[start:end])
        ev["x"], ev["y"], ev["p"] = chunk[:, 0], chunk[:, 1], chunk[:, 2]
        return ev

    def load(self, i: int):
        _, mask, _ = self.samples[i]
        labels = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
        if labels is None:
            raise ConfigError(f"{mask}: not a readable PNG")
        ev = self.events(i)
        voxel = events_to_input(ev, DDD17_SENSOR_HW, self.bins, self.height, self.width, DDD17_CROP_BOTTOM)
        return voxel, resize_labels(labels, self.height, self.width)


class DSECDataset(SegmentationDataset):
    def __init__(self, root: str | Path, split: str = "train", bins: int = 5, height: int = 440, width: int = 640,
                 n_events: int = 100_000, num_classes: int = 11,
                 sequences: list[str] | None = None) -> None:
        import h5py

        super().__init__(height, width, bins)
        self._h5py = h5py
        root = Path(root)
        if num_classes not in (11, 19):
            raise ConfigError(f"DSEC-Semantic has 11- and 19-class labels, not {num_classes}")
        if sequences is None:
            if split not in DSEC_SPLITS:
                raise ConfigError(f"DSEC split '{split}' unknown (expected one of: {', '.join(DSEC_SPLITS)})")
            sequences = list(DSEC_SPLITS[split])
        self.n_events = n_events
        self.samples: list[tuple[Path, Path, int]] = []
        self._rect: dict[Path, np.ndarray] = {}
        self._offset: dict[Path, int] = {}
        for name in sequences:
            seq = next((c for c in (root / name, root / "train" / name, root / "test" / name) if c.is_dir()), None)
            if seq is None:
                raise ConfigError(f"{root}: sequence {name} not found (looked in ./, train/, test/)")
            ts_file = seq / "semantic" / "timestamps.txt"
            label_dir = seq / "semantic" / f"{num_classes}classes" / "data"
            ev_file = seq / "events" / "left" / "events.h5"
            rect_file = seq / "events" / "left" / "rectify_map.h5"
            for f in (ts_file, label_dir, ev_file, rect_file):
                if not f.exists():
                    raise ConfigError(f"{f}: missing (DSEC-Semantic layout)")
            ts = np.loadtxt(ts_file, dtype=np.int64, ndmin=1)
            labels = sorted(label_dir.glob("*.png"))
            if len(labels) != len(ts):
                raise ConfigError(f"{label_dir}: {len(labels)} labels but {len(ts)} timestamps in {ts_file}")
            with h5py.File(rect_file, "r") as h:
                if "rectify_map" not in h:
                    raise ConfigError(f"{rect_file}: no 'rectify_map' dataset")
                rect = h["rectify_map"][()]
            if rect.shape != (*DSEC_SENSOR_HW, 2):
                raise ConfigError(f"{rect_file}: rectify_map shape {rect.shape}, expected (480, 640, 2)")
            self._rect[ev_file] = rect
            with h5py.File(ev_file, "r") as h:
                for key in ("events/x", "events/y", "events/p", "events/t", "ms_to_idx"):
                    if key not in h:
                        raise ConfigError(f"{ev_file}: missing dataset '{key}'")
                self._offset[ev_file] = int(h["t_offset"][()]) if "t_offset" in h else 0
            for k in range(DSEC_SKIP_FIRST_LABELS, len(ts), 2):
                self.samples.append((ev_file, labels[k], int(ts[k])))
        if not self.samples:
            raise ConfigError(f"{root}: no labelled samples in {', '.join(sequences)}")

    def __len__(self) -> int:
        return len(self.samples)

    def events(self, i: int) -> np.ndarray:
        """The last ``n_events`` events before the label time, rectified and rounded to pixels."""
        ev_file, _, t_end_us = self.samples[i]
        with self._h5py.File(ev_file, "r") as h:
            t_rel = t_end_us - self._offset[ev_file]
            ms_to_idx = h["ms_to_idx"]
            t_ds = h["events/t"]
            ms = int(np.clip(t_rel // 1000, 0, len(ms_to_idx) - 1))
            lo = int(ms_to_idx[ms])
            hi = int(ms_to_idx[ms + 1]) if ms + 1 < len(ms_to_idx) else len(t_ds)
            end = lo + int(np.searchsorted(t_ds[lo:hi], t_rel, side="left"))
            start = max(0, end - self.n_events)
            x = h["events/x"][start:end].astype(np.int64)
            y = h["events/y"][start:end].astype(np.int64)
            p = h["events/p"][start:end]
            t = h["events/t"][start:end].astype(np.int64) + self._offset[ev_file]
        xy = self._rect[ev_file][y, x]
        xr = np.rint(xy[:, 0]).astype(np.int64)
        yr = np.rint(xy[:, 1]).astype(np.int64)
        H, W = DSEC_SENSOR_HW
        keep = (xr >= 0) & (xr < W) & (yr >= 0) & (yr < H)
        ev = np.empty(int(keep.sum()), EVENT_DTYPE)
        ev["x"], ev["y"], ev["t"], ev["p"] = xr[keep], yr[keep], t[keep], p[keep]
        return ev

    def load(self, i: int):
        _, label_file, _ = self.samples[i]
        labels = cv2.imread(str(label_file), cv2.IMREAD_GRAYSCALE)
        if labels is None:
            raise ConfigError(f"{label_file}: not a readable PNG")
        voxel = events_to_input(self.events(i), DSEC_SENSOR_HW, self.bins, self.height, self.width, DSEC_CROP_BOTTOM)
        return voxel, resize_labels(labels, self.height, self.width)
