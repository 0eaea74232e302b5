"""The search loop's models from the rig file: shipped weights when present, a named fallback otherwise."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from foveate.system.config import default_rig_path, load_rig, parse_rig, resolve_model_path
from foveate.system.errors import ConfigError
from foveate.system.rig import Rig
from foveate.system.search.scheduler import SearchLoop

ORACLE_SEGMENTER = {"backend": "foveate.hardware.sim.oracle:OracleSegmenter", "settings": {"label_noise": 0.02}}


def _default_data() -> dict:
    return copy.deepcopy(yaml.safe_load(default_rig_path().read_text()))


def _parse(data: dict, rig_dir=None):
    return parse_rig(data, source="<test rig>", rig_dir=rig_dir or default_rig_path().parent)


def test_the_embedded_rig_runs_the_shipped_int8_detector():
    cfg = load_rig(None)
    det = cfg.models["detector"]
    assert det.backend is None and det.path.name == "detector_int8.onnx"
    assert resolve_model_path(det.path, cfg.rig_dir).is_file()
    seg = cfg.models["segmenter"]
    chain = []
    while seg is not None:
        chain.append(seg.path.name if seg.path is not None else seg.backend)
        seg = seg.fallback
    assert chain == ["sltnet_twin.onnx", "sltnet_twin.pt", "foveate.hardware.sim.oracle:OracleSegmenter"]


def test_shipped_models_are_found_wherever_the_rig_file_lies(tmp_path):
    cfg = _parse(_default_data(), rig_dir=tmp_path)  # a copy of the embedded rig elsewhere
    assert resolve_model_path(cfg.models["detector"].path, tmp_path).is_file()
    assert resolve_model_path(Path("weights/x.onnx"), tmp_path) == tmp_path / "weights/x.onnx"
    with pytest.raises(ConfigError, match="no installed package 'foveate.nothing'"):
        resolve_model_path(Path("foveate.nothing:weights/x.onnx"), tmp_path)


def test_fallback_needs_a_path_and_missing_files_name_their_key(tmp_path):
    data = _default_data()
    data["models"]["segmenter"] = {**ORACLE_SEGMENTER, "fallback": ORACLE_SEGMENTER}
    with pytest.raises(ConfigError, match=r"models\.segmenter.*'fallback' goes with 'path'"):
        _parse(data)
    data["models"]["segmenter"] = {"path": str(tmp_path / "a.onnx")}
    with pytest.raises(ConfigError, match=r"models\.segmenter\.path: file not found: .*a\.onnx"):
        _parse(data)
    data["models"]["segmenter"] = {"path": str(tmp_path / "a.onnx"), "fallback": {"path": str(tmp_path / "b.onnx")}}
    with pytest.raises(ConfigError, match=r"models\.segmenter\.fallback\.path: file not found: .*b\.onnx"):
        _parse(data)


def _loop(data: dict, seconds: float) -> dict:
    data["devices"]["wide_events"]["settings"]["stream_ahead_s"] = 0.0
    with Rig(_parse(data)) as rig:
        loop = SearchLoop(rig, "ppm")
        summary = loop.run(seconds)
        summary["prior_spread"] = float(np.ptp(loop.ppm.prior)) if loop.ppm.prior is not None else 0.0
    return summary


def test_missing_weights_fall_back_and_the_summary_says_so(tmp_path):
    data = _default_data()
    data["models"]["segmenter"] = {"path": str(tmp_path / "sltnet_twin.onnx"), "fallback": ORACLE_SEGMENTER}
    s = _loop(data, 0.03)
    assert s["segmenter"] == "OracleSegmenter"
    assert "sltnet_twin.onnx not found" in s["model_notes"]["segmenter"]
    assert s["detector"] == "OnnxDetector" and "detector" not in s["model_notes"]


@pytest.mark.slow
def test_sltnet_weights_present_segment_the_wide_events(tmp_path):
    torch = pytest.importorskip("torch")
    from foveate.models.sltnet.config import get_config
    from foveate.models.sltnet.export import export_onnx
    from foveate.models.sltnet.model import SLTNet

    torch.manual_seed(0)
    path = tmp_path / "sltnet_twin.onnx"
    export_onnx(SLTNet(get_config("twin")).eval(), path)  # untrained, seeded: the wiring, not the skill
    data = _default_data()
    data["models"]["segmenter"] = {"path": str(path), "runtime": "onnxruntime", "settings": {"threads": 1},
                                   "fallback": ORACLE_SEGMENTER}
    s = _loop(data, 0.25)
    assert s["segmenter"] == "SLTNetSegmenter" and s["model_notes"] == {}
    assert s["ppm_source"] == "events"
    assert s["stages"]["segment"]["completed"] >= 2 and s["ppm_refreshes"] >= 2
    assert s["prior_spread"] > 0  # the map's prior came from SLTNet's class probabilities
    assert s["frames"] > 0
