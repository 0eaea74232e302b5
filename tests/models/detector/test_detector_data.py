"""Twin view generation: determinism, ground truth from boxes or label maps, clear errors."""

import numpy as np
import pytest

from foveate.models.detector.data import ViewSet, ViewSpec, boxes_from_meta, generate_views, load_views
from foveate.system.errors import FoveateError


def test_same_spec_gives_identical_views_and_other_seed_differs():
    spec = ViewSpec(n_views=6, seed=11, views_per_world=3, size=128)
    a, b = generate_views(spec, progress=False), generate_views(spec, progress=False)
    assert a.images.shape == (6, 128, 128) and a.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    c = generate_views(ViewSpec(n_views=6, seed=12, views_per_world=3, size=128), progress=False)
    assert not np.array_equal(a.images, c.images)


def test_views_vary_scale_and_exposure_and_boxes_lie_inside():
    vs = generate_views(ViewSpec(n_views=16, seed=3, views_per_world=4), progress=False)
    hfovs = {round(i["hfov_deg"], 3) for i in vs.info}
    assert len(hfovs) == 4  # one search field of view per world
    assert len({i["exposure_s"] for i in vs.info}) == 16
    assert len(vs.boxes) > 0
    b = vs.boxes[:, 2:6]
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 2] <= 256) and np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    assert set(np.unique(vs.boxes[:, 1]).astype(int)) <= {0, 1}


def test_boxes_from_meta_reads_the_twin_contract_and_clips():
    meta = {"boxes": [
        {"class_id": 4, "class_name": "human", "target_id": 3, "box": [10, 20, 30, 80], "visible_fraction": 0.5},
        {"class_id": 5, "class_name": "vehicle", "target_id": 7, "box": [200, 100, 300, 150], "visible_fraction": 1.0},
        {"class_id": 2, "class_name": "object", "target_id": 9, "box": [0, 0, 5, 5], "visible_fraction": 1.0},
    ]}
    b, c, v, src = boxes_from_meta(meta, (256, 256))
    assert src == "meta"
    np.testing.assert_allclose(b, [[10, 20, 30, 80], [200, 100, 256, 150]])
    assert c.tolist() == [0, 1] and v.tolist() == [0.5, 1.0]


def test_boxes_from_labels_when_the_twin_has_no_boxes():
    labels = np.zeros((64, 64), np.uint8)
    labels[10:30, 5:12] = 4  # human
    labels[40:50, 20:60] = 5  # vehicle
    b, c, v, src = boxes_from_meta({"labels": labels}, (64, 64))
    assert src == "labels"
    order = np.argsort(c)
    np.testing.assert_array_equal(b[order], [[5, 10, 12, 30], [20, 40, 60, 50]])


def test_bad_meta_gives_clear_errors():
    with pytest.raises(FoveateError, match="no ground truth"):
        boxes_from_meta({}, (8, 8))
    with pytest.raises(FoveateError, match=r"boxes\[0\]: no box"):
        boxes_from_meta({"boxes": [{"class_name": "human"}]}, (8, 8))


def test_cache_round_trip(tmp_path):
    spec = ViewSpec(n_views=3, seed=5, views_per_world=3)
    a = load_views(spec, tmp_path, progress=False)
    files = list(tmp_path.glob("views-*.npz"))
    assert len(files) == 1
    b = ViewSet.load(files[0])
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert b.spec["seed"] == 5


def test_loading_a_foreign_file_is_a_clear_error(tmp_path):
    p = tmp_path / "x.npz"
    p.write_bytes(b"not a zip")
    with pytest.raises(FoveateError, match="not a detector view set"):
        ViewSet.load(p)


def test_worker_processes_render_the_same_views():
    spec = ViewSpec(n_views=5, seed=11, views_per_world=2, size=96)  # 3 worlds, the last one short
    a, b = generate_views(spec, progress=False), generate_views(spec, progress=False, workers=2)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.info == b.info and len(a.info) == 5
    assert set(a.boxes[:, 0].astype(int)) <= set(range(5))
