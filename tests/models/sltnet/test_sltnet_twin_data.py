"""The digital-twin training set: labelled windows, deterministic by seed, held-out validation scenes, cache."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.models.sltnet.config import get_config
from foveate.models.sltnet.twin_data import TwinDataset, TwinDataSpec, build_twin_cache, generate_sequence

SPEC = TwinDataSpec(seed=3, train_sequences=2, val_sequences=1, windows_per_sequence=2, sensor_width=80,
                    sensor_height=60, window_ms=(20, 30), warmup_ms=20)
CFG = get_config("twin").with_(height=48, width=64)


def test_sequences_vary_and_validation_scenes_are_held_out():
    train, val = SPEC.sequences("train"), SPEC.sequences("val")
    assert {s["scene"] for s in train} == {"street", "parking_lot"} and val[0]["scene"] == "street"
    assert not {s["scene_seed"] for s in train} & {s["scene_seed"] for s in val}
    big = TwinDataSpec().sequences("train")
    assert {s["scene"] for s in big} == {"street", "parking_lot", "plaza"}
    for key in ("contrast_threshold", "speed_scale", "vibration_deg", "window_us"):
        assert len({s[key] for s in big}) > 20, key
    assert SPEC.sequences("train") == train  # a function of the spec alone


def test_generation_is_deterministic_and_labelled():
    seq = SPEC.sequences("val")[0]
    v1, l1, n1 = generate_sequence(seq, SPEC, CFG)
    v2, l2, n2 = generate_sequence(seq, SPEC, CFG)
    assert v1.shape == (2, 5, 48, 64) and v1.dtype == np.float16 and l1.shape == (2, 48, 64)
    assert np.array_equal(v1, v2) and np.array_equal(l1, l2) and n1 == n2
    assert min(n1) > 0 and l1.max() < 6 and len(np.unique(l1)) >= 2
    assert np.count_nonzero(v1) > 0


def test_cache_is_built_once_and_loads(tmp_path):
    folder = build_twin_cache(SPEC, CFG, tmp_path, progress=False)
    files = sorted(folder.rglob("seq_*.npz"))
    assert len(files) == 3
    stamps = [f.stat().st_mtime_ns for f in files]
    assert build_twin_cache(SPEC, CFG, tmp_path, progress=False) == folder
    assert [f.stat().st_mtime_ns for f in files] == stamps
    train, val = TwinDataset(folder, "train", CFG), TwinDataset(folder, "val", CFG)
    assert (len(train), len(val)) == (4, 2)
    v, lab = train[3]
    assert v.shape == (5, 48, 64) and v.dtype == np.float32 and lab.shape == (48, 64)
    with pytest.raises(Exception, match="the model wants"):
        TwinDataset(folder, "train", CFG.with_(height=56))
    # another spec or model size gets another folder
    assert SPEC.key(CFG) != SPEC.key(CFG.with_(height=56)) != TwinDataSpec(seed=4).key(CFG)


def test_worker_processes_build_the_same_cache(tmp_path):
    one = build_twin_cache(SPEC, CFG, tmp_path / "one", progress=False)
    two = build_twin_cache(SPEC, CFG, tmp_path / "two", progress=False, workers=2)
    a, b = TwinDataset(one, "train", CFG), TwinDataset(two, "train", CFG)
    assert np.array_equal(a.voxels, b.voxels) and np.array_equal(a.labels, b.labels) and a.meta == b.meta
    assert np.array_equal(TwinDataset(one, "val", CFG).labels, TwinDataset(two, "val", CFG).labels)


def test_workers_below_one_are_a_clear_error(tmp_path):
    with pytest.raises(Exception, match="expected at least 1"):
        build_twin_cache(SPEC, CFG, tmp_path, progress=False, workers=0)
