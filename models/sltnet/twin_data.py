"""Synthetic SLTNet training data from the digital twin: event windows with per-pixel labels.

Each *sequence* is one simulated wide event camera (the embedded rig's: 320x240, 64 deg, tilted
6 deg down) looking at one twin scene (``street``, ``parking_lot`` or ``plaza``, with its own
layout seed), with its own target speeds (a factor on the scenes' human and vehicle speed
ranges), contrast threshold, camera vibration and window length; the camera's
``labels_at(t_us)`` gives the ground truth of the window ending at ``t_us`` in DDD17's six
classes. Windows of a sequence follow each other (optionally with a gap).

Vibration (a small pan/tilt wobble) makes static edges fire, as ego-motion does in DDD17;
without it a fixed camera sees only the movers and the static classes cannot be told from
events. Rigs that run SLTNet should give their simulated event camera ``vibration_deg``.

Training and validation sequences use disjoint layout seeds, so validation scenes are held out.
Everything follows from :class:`TwinDataSpec` (its ``seed`` included), so generation is
deterministic; results are cached under ``.cache/sltnet/twin/<key>/`` as model-ready inputs
(float16) and labels at the model size, keyed by the spec and the model input.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from foveate.models.sltnet.config import SLTNetConfig
from foveate.models.sltnet.datasets import SegmentationDataset
from foveate.models.sltnet.preprocess import events_to_input, resize_labels
from foveate.system.errors import ConfigError

log = logging.getLogger(__name__)

TWIN_SCENES = ("street", "parking_lot", "plaza")
GENERATOR_VERSION = 3
HUMAN_SPEED_MPS = (0.8, 1.8)  # scaled per sequence by speed_scale
VEHICLE_SPEED_MPS = (3.0, 12.0)
DEFAULT_CACHE = Path(".cache") / "sltnet" / "twin"


@dataclass(frozen=True)
class TwinDataSpec:
    seed: int = 0
    train_sequences: int = 30
    val_sequences: int = 9
    windows_per_sequence: int = 32
    sensor_width: int = 320  # the embedded rig's wide event camera
    sensor_height: int = 240
    hfov_deg: float = 64.0
    rotation_deg: tuple[float, float, float] = (0.0, -6.0, 0.0)
    window_ms: tuple[int, int] = (30, 80)  # uniform range per sequence
    contrast: tuple[float, float] = (0.12, 0.3)  # contrast threshold range per sequence
    speed_scale: tuple[float, float] = (0.5, 2.0)  # factor on target speeds, per sequence
    vibration_deg: tuple[float, float] = (0.03, 0.1)  # camera wobble amplitude, per sequence
    gap_ms: int = 0  # between windows (simulating a gap costs as much as a window)
    warmup_ms: int = 100

    def key(self, config: SLTNetConfig) -> str:
        blob = json.dumps([GENERATOR_VERSION, asdict(self), config.bins, config.height, config.width], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def sequences(self, split: str) -> list[dict]:
        """The (scene, layout seed, contrast, window) of every sequence of ``split``."""
        if split not in ("train", "val"):
            raise ConfigError(f"twin split '{split}' unknown (expected train or val)")
        n = self.train_sequences if split == "train" else self.val_sequences
        base = 10_000 if split == "train" else 90_000  # disjoint layout seeds: held-out scenes
        rng = np.random.default_rng([self.seed, 0 if split == "train" else 1])
        out = []
        for i in range(n):
            out.append({
                "scene": TWIN_SCENES[i % len(TWIN_SCENES)],
                "scene_seed": base + self.seed * 1000 + i,
                "contrast_threshold": round(float(rng.uniform(*self.contrast)), 4),
                "speed_scale": round(float(rng.uniform(*self.speed_scale)), 3),
                "vibration_deg": round(float(rng.uniform(*self.vibration_deg)), 4),
                "window_us": int(rng.uniform(*self.window_ms) * 1000),
            })
        return out


def _rig_config(seq: dict, spec: TwinDataSpec):
    from foveate.system.config import parse_rig

    return parse_rig({
        "name": "sltnet-twin-data",
        "clock": "simulated",
        "sim": {"seed": seq["scene_seed"], "scene": seq["scene"],
                "human_speed_mps": [round(v * seq["speed_scale"], 3) for v in HUMAN_SPEED_MPS],
                "vehicle_speed_mps": [round(v * seq["speed_scale"], 3) for v in VEHICLE_SPEED_MPS]},
        "devices": {"events": {"kind": "event_camera", "backend": "sim", "role": "wide_events", "settings": {
            "width": spec.sensor_width, "height": spec.sensor_height, "hfov_deg": spec.hfov_deg,
            "rotation_deg": list(spec.rotation_deg), "contrast_threshold": seq["contrast_threshold"],
            "vibration_deg": seq["vibration_deg"]}}},
    }, source=f"<twin data {seq['scene']} seed {seq['scene_seed']}>")


def generate_sequence(seq: dict, spec: TwinDataSpec, config: SLTNetConfig) -> tuple[np.ndarray, np.ndarray, list]:
    """Model inputs ``[N, bins, h, w]`` float16, labels ``[N, h, w]`` uint8 and raw event counts."""
    from foveate.system.rig import Rig

    sensor = (spec.sensor_height, spec.sensor_width)
    voxels, labels, counts = [], [], []
    with Rig(_rig_config(seq, spec)) as rig:
        cam = rig.role("wide_events")
        if not hasattr(cam, "labels_at"):
            raise ConfigError("the simulated event camera has no labels_at(t_us): this twin cannot make SLTNet data")
        clock = rig.clock
        clock.advance_ns(spec.warmup_ms * 1_000_000)
        cam.read(1.0)
        for _ in range(spec.windows_per_sequence):
            clock.advance_ns(seq["window_us"] * 1000)
            pkt = cam.read(1.0)
            lab = np.asarray(cam.labels_at(pkt.t_end_us), dtype=np.uint8)
            voxels.append(events_to_input(pkt.events, sensor, config.bins, config.height, config.width)
                          .astype(np.float16))
            labels.append(resize_labels(lab, config.height, config.width))
            counts.append(len(pkt))
            if spec.gap_ms:
                clock.advance_ns(spec.gap_ms * 1_000_000)
                cam.read(1.0)
    return np.stack(voxels), np.stack(labels), counts


def build_twin_cache(spec: TwinDataSpec, config: SLTNetConfig, cache_root: str | Path = DEFAULT_CACHE,
                     progress: bool = True, workers: int = 1, splits: tuple[str, ...] = ("train", "val")) -> Path:
    """Generate (or reuse) the cached ``splits`` (default both); returns their folder.

    Sequences are independent (each has its own seed), so ``workers > 1`` generates them in that
    many processes with the same result.
    """
    from tqdm import tqdm

    if workers < 1:
        raise ConfigError(f"twin data workers {workers}: expected at least 1 (--data-workers)")
    folder = Path(cache_root) / spec.key(config)
    todo = [(split, i, seq) for split in splits for i, seq in enumerate(spec.sequences(split))
            if not (folder / split / f"seq_{i:03d}.npz").is_file()]
    if todo:
        log.info("generating %d twin sequences into %s", len(todo), folder)
    pool = None
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("spawn"))
        results = pool.map(generate_sequence, [seq for _, _, seq in todo], [spec] * len(todo), [config] * len(todo))
    else:
        results = (generate_sequence(seq, spec, config) for _, _, seq in todo)
    try:
        for (split, i, seq), (vox, lab, counts) in tqdm(zip(todo, results), total=len(todo), desc="twin data",
                                                        unit="seq", disable=not progress):
            _save_sequence(folder, split, i, seq, vox, lab, counts)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    (folder / "spec.json").write_text(json.dumps({"spec": asdict(spec), "generator_version": GENERATOR_VERSION,
                                                  "model_input": [config.bins, config.height, config.width]}, indent=1))
    return folder


def _save_sequence(folder: Path, split: str, i: int, seq: dict, vox: np.ndarray, lab: np.ndarray, counts: list) -> None:
    (folder / split).mkdir(parents=True, exist_ok=True)
    tmp = folder / split / f"seq_{i:03d}.tmp.npz"
    np.savez_compressed(tmp, voxels=vox, labels=lab, events=np.asarray(counts),
                        meta=np.asarray(json.dumps(seq)))
    tmp.replace(folder / split / f"seq_{i:03d}.npz")


class TwinDataset(SegmentationDataset):
    """The cached windows of one split, held in memory (float16 inputs)."""

    def __init__(self, folder: str | Path, split: str, config: SLTNetConfig) -> None:
        super().__init__(config.height, config.width, config.bins)
        files = sorted((Path(folder) / split).glob("seq_*.npz"))
        files = [f for f in files if ".tmp" not in f.name]
        if not files:
            raise ConfigError(f"{Path(folder) / split}: no twin sequences (build them with build_twin_cache)")
        vox, lab, self.meta = [], [], []
        for f in files:
            with np.load(f) as z:
                if z["voxels"].shape[1:] != (config.bins, config.height, config.width):
                    raise ConfigError(f"{f}: inputs of shape {z['voxels'].shape[1:]}, the model wants "
                                      f"{(config.bins, config.height, config.width)}")
                vox.append(z["voxels"])
                lab.append(z["labels"])
                self.meta.append(json.loads(str(z["meta"])))
        self.voxels = np.concatenate(vox)
        self.labels = np.concatenate(lab)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int):
        return self.voxels[i].astype(np.float32), self.labels[i]
