"""The shipped twin weights: checkpoint, card, ONNX export and INT8 model belong together."""

from __future__ import annotations

import json

import numpy as np
import pytest

from foveate.models.quant.targets import random_voxels
from foveate.models.sltnet.runtime import load_model, load_runner
from foveate.models.sltnet.segmenter import SHIPPED_CARD, SHIPPED_WEIGHTS

ONNX = SHIPPED_WEIGHTS.with_suffix(".onnx")
INT8 = SHIPPED_WEIGHTS.with_name("sltnet_twin_int8.onnx")
pytestmark = pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="no shipped SLTNet weights")


def test_card_names_the_command_and_matches_the_checkpoint():
    card = json.loads(SHIPPED_CARD.read_text())
    model = load_model(SHIPPED_WEIGHTS)
    assert model.card == card
    command = card["training"]["command"]
    assert command.startswith("foveate train sltnet --config twin --data twin")
    assert ("--class-balance" in command) == card["training"]["class_balance"]
    assert 0.0 < card["metrics"]["val_miou"] <= 1.0
    assert card["training"]["train_windows"] > 0 and card["training"]["val_windows"] > 0


def test_shipped_onnx_is_the_export_of_the_shipped_checkpoint():
    v = random_voxels(3, load_model(SHIPPED_WEIGHTS).config, seed=5)
    torch_labels = load_runner(SHIPPED_WEIGHTS, "torch").logits(v).argmax(1)
    onnx_logits = load_runner(ONNX, "onnxruntime", threads=1).logits(v)
    # spike thresholds turn float-rounding differences into rare flips; labels must still agree
    assert (onnx_logits.argmax(1) == torch_labels).mean() > 0.995


def test_shipped_int8_model_runs_and_agrees_with_fp32(tmp_path):
    from foveate.models.sltnet.twin_data import TwinDataset, TwinDataSpec, build_twin_cache

    recipe = json.loads(INT8.with_suffix(".recipe.json").read_text())
    assert recipe["accuracy"]["drop_points"] <= 0.5  # the INT8 budget, measured when it was made
    # in-distribution inputs (the INT8 ranges were calibrated on twin windows): a few fresh ones
    config = load_model(SHIPPED_WEIGHTS).config
    spec = TwinDataSpec(seed=77, train_sequences=1, val_sequences=1, windows_per_sequence=3)
    val = TwinDataset(build_twin_cache(spec, config, tmp_path, progress=False), "val", config)
    v = np.stack([val[i][0] for i in range(len(val))]).astype(np.float32)
    fp32 = load_runner(ONNX, "onnxruntime", threads=1).logits(v).argmax(1)
    int8 = load_runner(INT8, "onnxruntime", threads=1).logits(v).argmax(1)
    assert (int8 == fp32).mean() > 0.95  # 0.968 when shipped
