"""Model files given by users: tampered (sha256 in the rig file), wrong opset, wrong shape, not ONNX at all.
Each is one ConfigError line naming the file or rig key and what was expected."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from foveate.system.config import default_rig_path, parse_rig
from foveate.system.errors import ConfigError
from foveate.system.model_files import file_sha256, open_onnx
from foveate.system.search.components import build_model

WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "weights"
DETECTOR = WEIGHTS / "detector.onnx"


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and "Traceback" not in msg and "onnxruntime_src" not in msg
    return msg


def _rig(tmp_path, model: dict):
    data = yaml.safe_load(default_rig_path().read_text())
    data["models"] = {"detector": model}
    cfg = parse_rig(data, source=str(tmp_path / "rig.yaml"), rig_dir=tmp_path)
    return types.SimpleNamespace(config=cfg)


@pytest.fixture
def det_copy(tmp_path):
    p = tmp_path / "det.onnx"
    shutil.copy(DETECTOR, p)
    return p


def test_rig_sha256_accepts_the_recorded_file_and_refuses_a_tampered_one(tmp_path, det_copy):
    digest = file_sha256(det_copy)
    det = build_model(_rig(tmp_path, {"path": "det.onnx", "sha256": digest, "settings": {"threads": 1}}), "detector", True)
    assert det.classes and det.detect(np.zeros((256, 256), np.uint8)) is not None
    data = bytearray(det_copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the weights
    det_copy.write_bytes(bytes(data))
    with pytest.raises(ConfigError) as e:
        build_model(_rig(tmp_path, {"path": "det.onnx", "sha256": digest}), "detector", True)
    msg = _one_line(e)
    assert "rig.yaml: models.detector.sha256:" in msg and f"expected {digest}" in msg and str(det_copy) in msg


def test_rig_sha256_must_name_the_file_the_runtime_reads(tmp_path, det_copy):
    (tmp_path / "det.pt").write_bytes(b"checkpoint")
    with pytest.raises(ConfigError) as e:
        build_model(_rig(tmp_path, {"path": "det.pt", "sha256": "0" * 64}), "detector", True)
    assert "the onnxruntime runtime reads" in _one_line(e) and "det.onnx" in str(e.value)


def test_rig_sha256_must_be_64_hex_digits(tmp_path, det_copy):
    with pytest.raises(ConfigError, match=r"models.detector.sha256: String should match pattern"):
        _rig(tmp_path, {"path": "det.onnx", "sha256": "abc"})


def _set_opset(src: Path, dst: Path, version: int) -> Path:
    m = onnx.load(str(src))
    for op in m.opset_import:
        if op.domain in ("", "ai.onnx"):
            op.version = version
    onnx.save(m, str(dst))
    return dst


@pytest.mark.parametrize("version", [99, 3])
def test_wrong_opset_is_named(tmp_path, version):
    from foveate.models.detector.runtime import OnnxDetector

    p = _set_opset(DETECTOR, tmp_path / "opset.onnx", version)
    with pytest.raises(ConfigError) as e:
        OnnxDetector(p, threads=1)
    msg = _one_line(e)
    assert f"opset.onnx: ONNX opset {version} (domain ai.onnx) is not supported" in msg and "runs opsets 7.." in msg


def test_wrong_shape_against_the_models_own_config(tmp_path):
    from foveate.models.detector.runtime import ONNX_CONFIG_KEY, OnnxDetector

    m = onnx.load(str(DETECTOR))
    for prop in m.metadata_props:
        if prop.key == ONNX_CONFIG_KEY:
            cfg = json.loads(prop.value)
            cfg["input_size"] = [128, 128]
            prop.value = json.dumps(cfg)
    p = tmp_path / "shape.onnx"
    onnx.save(m, str(p))
    with pytest.raises(ConfigError) as e:
        OnnxDetector(p, threads=1)
    msg = _one_line(e)
    assert "shape.onnx: input 'image' has shape [?, 1, 256, 256], expected [?, 1, 128, 128]" in msg


@pytest.mark.parametrize("content,match", [
    (b"", "not an ONNX detector"),
    (b"\x08\x07garbage that is no protobuf\xff\xff", "not an ONNX detector"),
    (None, "no 'foveate.detector.config' metadata"),
])
def test_not_a_detector(tmp_path, content, match):
    from foveate.models.detector.runtime import OnnxDetector

    p = tmp_path / "x.onnx"
    if content is None:
        _tiny_sltnet(p, bins=5, classes=6)
    else:
        p.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        OnnxDetector(p, threads=1)
    assert match in _one_line(e) and "x.onnx" in str(e.value)


def test_truncated_onnx_file(tmp_path):
    p = tmp_path / "cut.onnx"
    p.write_bytes(DETECTOR.read_bytes()[: DETECTOR.stat().st_size // 2])
    with pytest.raises(ConfigError) as e:
        open_onnx(p)
    assert "cut.onnx:" in _one_line(e)


def _tiny_sltnet(path: Path, bins: int, classes: int, meta_bins: int | None = None, meta_classes: int | None = None):
    """A one-convolution ONNX model with SLTNet's input/output names and config metadata."""
    from foveate.models.sltnet.export import CONFIG_METADATA_KEY

    w = helper.make_tensor("w", TensorProto.FLOAT, [classes, bins, 1, 1], np.ones(classes * bins, np.float32))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["voxel", "w"], ["logits"])], "tiny",
        [helper.make_tensor_value_info("voxel", TensorProto.FLOAT, [1, bins, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    cfg = {"name": "tiny", "classes": [f"c{i}" for i in range(meta_classes or classes)], "height": 8, "width": 8,
           "bins": meta_bins or bins, "time_steps": 1}
    helper.set_model_props(model, {CONFIG_METADATA_KEY: json.dumps(cfg)})
    onnx.save(model, str(path))
    return path


def test_sltnet_onnx_shapes_are_checked(tmp_path):
    from foveate.models.sltnet.runtime import OnnxRunner

    ok = OnnxRunner(_tiny_sltnet(tmp_path / "ok.onnx", bins=5, classes=6), threads=1)
    assert ok.logits(np.ones((5, 8, 8), np.float32)).shape == (1, 6, 8, 8)
    with pytest.raises(ConfigError) as e:
        OnnxRunner(_tiny_sltnet(tmp_path / "bins.onnx", bins=5, classes=6, meta_bins=3), threads=1)
    assert "bins.onnx: input 'voxel' has shape [1, 5, 8, 8], expected [?, 3, 8, 8]" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        OnnxRunner(_tiny_sltnet(tmp_path / "cls.onnx", bins=5, classes=6, meta_classes=11), threads=1)
    assert "output 'logits' has shape [1, 6, 8, 8], expected [?, 11, ?, ?]" in _one_line(e)
    with pytest.raises(ConfigError) as e:
        OnnxRunner(_set_opset(tmp_path / "ok.onnx", tmp_path / "new.onnx", 40), threads=1)
    assert "ONNX opset 40" in _one_line(e)


class _RunsCode:
    """A pickle that would run code when loaded without weights_only."""

    def __reduce__(self):
        import os

        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("loader", ["detector", "sltnet"])
def test_a_checkpoint_carrying_code_is_refused_not_run(tmp_path, monkeypatch, loader):
    torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pt"
    torch.save({"config": "{}", "state_dict": {}, "card": _RunsCode()}, str(p))
    if loader == "detector":
        from foveate.models.detector.runtime import load_checkpoint as load
    else:
        from foveate.models.sltnet.runtime import load_model as load
    with pytest.raises(ConfigError) as e:
        load(p)
    assert "evil.pt: cannot read" in _one_line(e) and not (tmp_path / "pwned").exists()


def test_shipped_detector_checkpoint_loads_with_weights_only():
    pytest.importorskip("torch")
    from foveate.models.detector.runtime import load_checkpoint

    net, card = load_checkpoint(WEIGHTS / "detector.pt")
    assert net.config.classes and isinstance(card, dict)
