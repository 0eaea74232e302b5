"""``foveate quantize`` end to end on a tiny SLTNet checkpoint, and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from foveate.tools.cli import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A seeded 32x48 SLTNet checkpoint and six voxel-grid-like inputs for it."""
    import torch

    from foveate.models.quant.targets import random_voxels, seeded_sltnet
    from foveate.models.sltnet.config import get_config
    from foveate.models.sltnet.runtime import save_checkpoint

    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("tiny")
    model = seeded_sltnet(get_config("twin").with_(height=32, width=48), seed=3)
    save_checkpoint(d / "sltnet.pt", model)
    np.save(d / "calib.npy", random_voxels(6, model.config, seed=4))
    return d, model.config


@pytest.mark.slow  # exports and quantizes a whole SLTNet graph
def test_quantize_writes_a_loadable_model_and_its_recipe(tiny, capsys):
    from foveate.models.quant.ptq import recipe_of
    from foveate.models.sltnet.runtime import OnnxRunner

    d, cfg = tiny
    out = d / "q" / "sltnet_int8.onnx"
    rc = main(["quantize", str(d / "sltnet.pt"), "--calib", str(d / "calib.npy"), "--out", str(out),
               "--calib-size", "4", "--threads", "1"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "spike layers:" in printed and "relative L2" in printed
    runner = OnnxRunner(out, threads=1)  # the float model's metadata travels: loads like any SLTNet export
    assert runner.config == cfg
    labels = runner.predict(np.load(d / "calib.npy")[:2])
    assert labels.shape == (2, 32, 48) and labels.max() < cfg.num_classes
    meta = recipe_of(out)
    assert meta["recipe"]["op_types"] == ["Conv"] and meta["recipe"]["fuse_spikes"]
    assert meta["spikes"]["conv_spikes"] > 0 and "/stem/stem.0/conv/Conv" in meta["float_nodes"]
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    # SLTNet has 128 spike layers: every threshold folded into an integer conv is one comparison less
    assert ops.count("Greater") + ops.count("Less") == 128 - meta["spikes"]["conv_spikes"]
    card = json.loads((d / "q" / "sltnet_int8.recipe.json").read_text())
    assert card["command"].startswith("foveate quantize ") and "--calib-size 4" in card["command"]
    assert card["kind"] == "sltnet"
    assert card["calibration"]["n"] == 4 and len(card["calibration"]["indices"]) == 4
    assert card["kernel_check"]["ok"] and card["spikes"] == meta["spikes"]


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("foveate: error:") and "\n" not in err, err
    return err


def test_bad_arguments_give_one_line_errors(tiny, tmp_path, capsys):
    d, _ = tiny
    pt, npy, out = str(d / "sltnet.pt"), str(d / "calib.npy"), str(tmp_path / "q.onnx")
    assert "nope.pt: weights file not found" in _error(capsys, ["quantize", str(tmp_path / "nope.pt"), "--calib", npy,
                                                                "--out", out])
    assert "missing.npy: calibration file not found" in _error(capsys, ["quantize", pt, "--calib",
                                                                        str(tmp_path / "missing.npy"), "--out", out])
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((3, 5, 16, 16), np.float32))
    assert "the model wants (5, 32, 48)" in _error(capsys, ["quantize", pt, "--calib", str(wrong), "--out", out])
    text = tmp_path / "text.npy"
    text.write_text("not numpy")
    assert "not a readable .npy array" in _error(capsys, ["quantize", pt, "--calib", str(text), "--out", out])
    assert "percentile 50.0" in _error(capsys, ["quantize", pt, "--calib", npy, "--out", out, "--percentile", "50"])
    assert "calibration size 0" in _error(capsys, ["quantize", pt, "--calib", npy, "--out", out, "--calib-size", "0"])
    assert "corrupted share 1.5" in _error(capsys, ["quantize", pt, "--calib", npy, "--out", out, "--corrupted", "1.5"])
    assert "model 'resnet'" in _error(capsys, ["quantize", "resnet", "--calib", npy, "--out", out])
    # scoring needs the twin data named in the checkpoint's card (this one has none)
    assert "pass --data FOLDER" in _error(capsys, ["quantize", pt, "--calib", npy, "--out", out, "--eval"])
    assert not (tmp_path / "q.onnx").exists()
