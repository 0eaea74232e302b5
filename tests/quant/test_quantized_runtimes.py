"""Quantized models run in the project's runtimes, picked by file like any other model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foveate.models.quant.ptq import QuantRecipe, quantize_model, recipe_of

SHIPPED_INT8 = Path(__file__).resolve().parents[2] / "models" / "weights" / "detector_int8.onnx"


@pytest.mark.skipif(not SHIPPED_INT8.is_file(), reason="no shipped INT8 detector")
def test_shipped_int8_detector_loads_through_the_rig_entry_point():
    from foveate.models.detector import load_runtime

    det = load_runtime(SHIPPED_INT8, "onnxruntime", score_threshold=0.3)
    img = np.full((256, 256), 90, np.uint8)
    assert isinstance(det.detect(img), list)
    meta = recipe_of(SHIPPED_INT8)
    assert meta["recipe"]["weight_bits"] == 8 and meta["calibration"]["n"] >= 16
    assert (SHIPPED_INT8.with_name("detector_int8.recipe.json")).is_file()


@pytest.mark.slow  # exports and quantizes a whole SLTNet graph (~1000 nodes)
def test_quantized_sltnet_keeps_its_config_and_runs(tmp_path):
    import torch

    from foveate.models.sltnet.export import export_onnx
    from foveate.models.sltnet.model import SLTNet
    from foveate.models.sltnet.runtime import OnnxRunner

    torch.manual_seed(0)
    model = SLTNet("twin")
    model.config = model.config.with_(height=32, width=48)
    x = np.random.default_rng(0).normal(size=(4, model.config.bins, 32, 48)).astype(np.float32)
    q = quantize_model(export_onnx(model), [x[0][None]], QuantRecipe(method="minmax", preprocess=False))
    path = tmp_path / "sltnet_int8.onnx"
    path.write_bytes(q.SerializeToString())
    runner = OnnxRunner(path, threads=1)
    assert runner.config.height == 32 and runner.config.width == 48
    labels = runner.predict(x[3:])
    assert labels.shape == (1, 32, 48) and labels.max() < model.config.num_classes
