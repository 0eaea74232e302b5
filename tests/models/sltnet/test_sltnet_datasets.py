"""Loaders of the official DDD17 (ESS) and DSEC-Semantic layouts, on small files written here."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pytest

from foveate.models.sltnet.datasets import DDD17Dataset, DSECDataset
from foveate.system.events.representations import voxel_grid
from foveate.system.errors import ConfigError


def test_ddd17_layout_splits_windows_and_sizes(tmp_path, write_ddd17):
    root = write_ddd17(tmp_path)
    train = DDD17Dataset(root, "train")
    valid = DDD17Dataset(root, "valid")
    test = DDD17Dataset(root, "test")
    assert (len(train), len(valid), len(test)) == (15, 3, 3)
    assert [d.name for d in valid.dirs] == ["dir1"] and [d.name for d in test.dirs] == ["dir4"]
    voxel, labels = valid[1]
    assert voxel.shape == (5, 200, 352) and voxel.dtype == np.float32
    assert labels.shape == (200, 352) and set(np.unique(labels)) == {1, 255}
    # the window is exactly the index row's [start, end) events, ns -> us
    ev = valid.events(1)
    t_ns = np.fromfile(root / "dir1" / "events.dat.t", dtype="<i8")
    assert len(ev) == 400 and ev["t"][0] == t_ns[800] // 1000
    # voxel = normalised grid of those events at 260x346, top 200 rows, resized to 352 wide
    ref = voxel_grid(ev, 5, (346, 260))[:, :200]
    assert np.allclose(voxel[:, :, 0], ref[:, :, 0], atol=1e-5)
    assert abs(voxel.sum() - ref.sum() * 352 / 346) < 0.05 * np.abs(ref).sum()


def test_ddd17_bad_layouts_are_named(tmp_path, write_ddd17):
    with pytest.raises(ConfigError, match="7 ESS DDD17 folders"):
        DDD17Dataset(write_ddd17(tmp_path / "a", n_dirs=3), "train")
    root = write_ddd17(tmp_path / "b")
    (root / "dir1" / "events.dat.xyp").write_bytes(b"\0" * 10)
    with pytest.raises(ConfigError, match=r"dir1/events.dat.xyp: 10 bytes"):
        DDD17Dataset(root, "valid")


def _write_dsec_sequence(seq, n_labels=10, per_label=3000, seed=0):
    rng = np.random.default_rng(seed)
    (seq / "events" / "left").mkdir(parents=True)
    lab_dir = seq / "semantic" / "11classes" / "data"
    lab_dir.mkdir(parents=True)
    t_offset = 5_000_000
    n = per_label * (n_labels + 1)
    t = np.sort(rng.integers(0, 50_000 * (n_labels + 1), n)).astype(np.int64)
    x = rng.integers(0, 640, n).astype(np.uint16)
    y = rng.integers(0, 480, n).astype(np.uint16)
    p = rng.integers(0, 2, n).astype(np.uint8)
    ms_to_idx = np.searchsorted(t, np.arange(0, t[-1] // 1000 + 2) * 1000).astype(np.uint64)
    with h5py.File(seq / "events" / "left" / "events.h5", "w") as h:
        for k, v in dict(x=x, y=y, p=p, t=t).items():
            h.create_dataset(f"events/{k}", data=v)
        h.create_dataset("ms_to_idx", data=ms_to_idx)
        h.create_dataset("t_offset", data=np.int64(t_offset))
    # rectify map: shift by one pixel right (x+1), identity in y
    gx, gy = np.meshgrid(np.arange(640, dtype=np.float32), np.arange(480, dtype=np.float32))
    with h5py.File(seq / "events" / "left" / "rectify_map.h5", "w") as h:
        h.create_dataset("rectify_map", data=np.stack([gx + 1.0, gy], -1))
    ts = t_offset + 50_000 * (np.arange(n_labels) + 1)
    np.savetxt(seq / "semantic" / "timestamps.txt", ts, fmt="%d")
    for k in range(n_labels):
        cv2.imwrite(str(lab_dir / f"{k:06d}.png"), np.full((440, 640), k % 11, np.uint8))
    return t, x, y, ts


def test_dsec_layout_window_rectification_and_label_schedule(tmp_path):
    t, x, y, ts = _write_dsec_sequence(tmp_path / "test" / "zurich_city_13_a")
    ds = DSECDataset(tmp_path, sequences=["zurich_city_13_a"], n_events=1000)
    assert len(ds) == 2  # labels 6 and 8 of 10: the first 6 dropped, every 2nd used
    ev = ds.events(0)
    end = np.searchsorted(t, ts[6] - 5_000_000)
    assert ev["t"][-1] == t[end - 1] + 5_000_000  # last event before the label time
    # 1000 events, minus the ones the x+1 shift pushes off the sensor
    assert len(ev) == np.count_nonzero(x[end - 1000:end] < 639)
    assert np.array_equal(ev["x"], x[end - 1000:end][x[end - 1000:end] < 639] + 1)
    voxel, labels = ds[1]
    assert voxel.shape == (5, 440, 640) and labels.shape == (440, 640)
    assert np.all(labels == 8)


def test_dsec_missing_pieces_are_named(tmp_path):
    with pytest.raises(ConfigError, match="zurich_city_13_a not found"):
        DSECDataset(tmp_path, "valid")
    _write_dsec_sequence(tmp_path / "zurich_city_14_c")
    (tmp_path / "zurich_city_14_c" / "events" / "left" / "rectify_map.h5").unlink()
    with pytest.raises(ConfigError, match="rectify_map.h5: missing"):
        DSECDataset(tmp_path, sequences=["zurich_city_14_c"])
