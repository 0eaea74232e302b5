"""Fuzz the YAML inputs users write: rig files, calibration files, capture directories.

Any input gives either a loaded object or the project's one-line error naming the file;
never another exception, never a hang. Budget: a few seconds (deterministic, see tests/conftest.py;
HYPOTHESIS_PROFILE=fuzz-long runs many more examples).
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from foveate.system.config import RigConfig, default_rig_path, load_rig
from foveate.system.errors import FoveateError


def budget(n: int) -> int:
    """``n`` examples in CI; the profile's (larger) count under HYPOTHESIS_PROFILE=fuzz-long."""
    return n if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else settings.default.max_examples


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["sim", "replay", "galvo", "frame_camera", "search_camera", "a.b:C", "1e9",
                                     "-15.0", "[1, 2]", "", "\n", "\x00"]))
VALUES = st.recursive(SCALARS, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                      max_leaves=8)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def mutate(base, data) -> object:
    """Replace, delete or add at up to four random places of a parsed YAML document."""
    doc = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        path = data.draw(st.sampled_from(paths))
        value = data.draw(VALUES)
        if not path:
            doc = value
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        op = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if op == "replace":
            parent[path[-1]] = value
        elif op == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[data.draw(st.text(max_size=10))] = value
        else:
            parent.append(value)
    return doc


def _one_clean_line(exc: FoveateError, path) -> None:
    msg = str(exc)
    assert "\n" not in msg and str(path) in msg, msg


@pytest.fixture(scope="module")
def rig_data():
    return yaml.safe_load(default_rig_path().read_text())


@settings(max_examples=budget(80))
@given(data=st.data())
def test_fuzz_rig_structure(tmp_path, rig_data, data):
    p = tmp_path / "rig.yaml"
    p.write_text(yaml.safe_dump(mutate(rig_data, data), allow_unicode=True))
    try:
        cfg = load_rig(p)
    except FoveateError as exc:
        _one_clean_line(exc, p)
    else:
        assert isinstance(cfg, RigConfig)


@settings(max_examples=budget(60))
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))),
       raw=st.binary(max_size=64))
def test_fuzz_rig_text(tmp_path, text, raw):
    p = tmp_path / "rig.yaml"
    for content in (text.encode("utf-8", "surrogatepass"), raw, b"name: x\ndevices: {}\n" + raw):
        p.write_bytes(content)
        try:
            load_rig(p)
        except FoveateError as exc:
            _one_clean_line(exc, p)


def _galvo_calibration() -> dict:
    from foveate.calibration.calib_file import header

    cam = {"fx": 2000.0, "fy": 2000.0, "cx": 128.0, "cy": 128.0, "width": 256, "height": 256,
           "dist": [0.0, 0.0, 0.0, 0.0, 0.0]}
    mirror = {"axis_point_mm": [0.0, 0.0, 20.0], "axis_dir": [1.0, 0.0, 0.0], "normal0": [0.0, 0.6, -0.8],
              "surface_offset_mm": 0.0, "gain": 1.0, "offset_deg": 0.0}
    d = header("galvo_camera", {"captures": "x", "images": 10}, {"rms_px": 0.1})
    d.update(camera=cam, mirror1=mirror, mirror2=dict(mirror, axis_point_mm=[0.0, 10.0, 25.0]),
             T_cw=np.eye(4).tolist(), limits_deg=[[-15.0, 15.0], [-11.0, 11.0]])
    return d


@pytest.fixture(scope="module")
def calib_data():
    return _galvo_calibration()


def test_base_calibration_loads(tmp_path, calib_data):
    from foveate.calibration.calib_file import load_calibration

    p = tmp_path / "g.yaml"
    p.write_text(yaml.safe_dump(calib_data))
    assert load_calibration(p).galvo is not None


@pytest.mark.parametrize("kind", [["galvo_camera"], {"a": 1}, 3, None])
def test_calibration_kind_of_the_wrong_type(tmp_path, calib_data, kind):
    """Found by the fuzzer: an unhashable kind raised TypeError."""
    from foveate.calibration.calib_file import load_calibration

    p = tmp_path / "calib.yaml"
    p.write_text(yaml.safe_dump(dict(calib_data, kind=kind)))
    with pytest.raises(FoveateError, match=r"calib.yaml: kind: expected one of camera, galvo_camera"):
        load_calibration(p)


@settings(max_examples=budget(80))
@given(data=st.data())
def test_fuzz_calibration_file(tmp_path, calib_data, data):
    from foveate.calibration.calib_file import load_calibration

    p = tmp_path / "calib.yaml"
    p.write_text(yaml.safe_dump(mutate(calib_data, data), allow_unicode=True))
    try:
        cal = load_calibration(p)
        if cal.kind == "galvo_camera":
            cal.galvo
        elif hasattr(cal.data, "camera"):
            cal.camera
    except FoveateError as exc:
        _one_clean_line(exc, p)


CSV_ALPHABET = st.sampled_from(list("abc,.-+0123456789e\n\r\t \"'") + ["image", "pose", "theta_x_deg",
                                                                        "theta_y_deg", "a.png", "nan", "inf"])


@settings(max_examples=budget(80))
@given(body=st.one_of(st.lists(CSV_ALPHABET, max_size=60).map("".join).map(str.encode), st.binary(max_size=200)),
       board=st.sampled_from([b"type: checkerboard\ncols: 9\nrows: 6\nsquare_mm: 20\n", b"type: circles\n",
                              b"cols: [\n", b"\xff\xfe"]))
def test_fuzz_capture_directory(tmp_path, body, board):
    from foveate.calibration.capture_set import load_capture_dir

    d = tmp_path / "cap"
    d.mkdir(exist_ok=True)
    (d / "a.png").write_bytes(b"\x89PNG")
    (d / "board.yaml").write_bytes(board)
    (d / "captures.csv").write_bytes(b"image,pose,theta_x_deg,theta_y_deg\n" + body)
    for content in (None, body):
        if content is not None:
            (d / "captures.csv").write_bytes(content)
        try:
            cs = load_capture_dir(d)
        except FoveateError as exc:
            msg = str(exc)
            assert "\n" not in msg and str(d) in msg, msg
        else:
            assert cs.rows and all(np.isfinite([r.theta_x_deg, r.theta_y_deg]).all() for r in cs.rows)


def test_capture_image_name_too_long_for_the_os(tmp_path):
    """Found by the fuzzer: a 300-character image name raised OSError (ENAMETOOLONG)."""
    from foveate.calibration.capture_set import load_capture_dir

    (tmp_path / "board.yaml").write_text("type: checkerboard\ncols: 9\nrows: 6\nsquare_mm: 20\n")
    (tmp_path / "captures.csv").write_text("image,pose,theta_x_deg,theta_y_deg\n" + "a" * 300 + ",p,1,2\n")
    with pytest.raises(FoveateError, match=r"captures.csv: line 2: image 'aaa.*' not found"):
        load_capture_dir(tmp_path)
