"""Roofline: analytic op counts, INT8 detection in QDQ graphs, bounds, hardware table, CLI."""

from __future__ import annotations

import pytest

from foveate.models.quant.ptq import QuantRecipe, quantize_model
from foveate.models.roofline.analyze import Hardware, analyze, hardware_names, load_hardware, predict, summary
from foveate.system.errors import ConfigError

from ..quant.nets import TinyNet, export, inputs


def test_conv_ops_and_bytes_match_the_formulas():
    layers = {x.name: x for x in analyze(export(TinyNet()))}
    c1 = layers["/c1/Conv"]  # 1->8, 3x3, 16x16 output
    assert c1.ops == 2 * 16 * 16 * 8 * 1 * 9
    assert c1.bytes == 4 * (8 * 1 * 9 + 8) + 4 * 16 * 16 + 4 * 8 * 16 * 16
    dw = layers["/dw/Conv"]  # depthwise: Cin/g = 1 on an 8x8 map
    assert dw.ops == 2 * 8 * 8 * 8 * 9 and c1.precision == "fp32"


def test_qdq_convs_count_as_int8():
    q = quantize_model(export(TinyNet()), [x[None] for x in inputs(4)], QuantRecipe(method="minmax"))
    layers = analyze(q)
    convs = [x for x in layers if x.op == "Conv"]
    assert sum(x.precision == "int8" for x in convs) == 5 and sum(x.precision == "fp32" for x in convs) == 1
    c1 = next(x for x in convs if x.name.startswith("/c1/"))
    c1_float = next(x for x in analyze(export(TinyNet())) if x.name == "/c1/Conv")
    assert c1.bytes < c1_float.bytes and c1.ops == c1_float.ops
    assert not any(x.op in ("QuantizeLinear", "DequantizeLinear") and x.name.endswith("weight") for x in layers)


def test_bound_follows_the_ridge_point():
    layers = analyze(export(TinyNet()))
    fast_mem = Hardware("a", bandwidth_gbs=1e6, fp32_gops=1.0, int8_gops=1.0, dispatch_us=0.0)
    slow_mem = Hardware("b", bandwidth_gbs=1e-3, fp32_gops=1e6, int8_gops=1e6, dispatch_us=0.0)
    assert {x.bound for x in predict(layers, fast_mem) if x.ops} == {"compute"}
    assert {x.bound for x in predict(layers, slow_mem) if x.ops} == {"memory"}
    s = summary(predict(layers, load_hardware("raspberry-pi-5")), load_hardware("raspberry-pi-5"))
    assert s["predicted_ms"] > 0 and abs(sum(s["time_share"].values()) - 1) < 1e-9


def test_hardware_table():
    names = hardware_names()
    assert {"local", "jetson-orin-nano", "jetson-agx-orin", "raspberry-pi-5", "rk3588-npu"} <= set(names)
    for n in names:
        hw = load_hardware(n)
        assert hw.int8_gops >= hw.fp32_gops > 0 and hw.bandwidth_gbs > 0
    with pytest.raises(ConfigError, match="no hardware profile 'tpu'"):
        load_hardware("tpu")


def test_cli_prints_table_and_plot(tmp_path, capsys):
    import onnx

    from foveate.tools.cli import main

    p = tmp_path / "tiny.onnx"
    onnx.save(export(TinyNet()), str(p))
    assert main(["roofline", str(p), "--hardware", "raspberry-pi-5", "--plot", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert "| /c1/Conv | Conv | fp32 |" in out and (tmp_path / "r.png").stat().st_size > 1000
    assert main(["roofline", str(tmp_path / "missing.onnx")]) == 2
    assert "missing.onnx: model file not found" in capsys.readouterr().err


def test_measured_times_attach_to_layers():
    from foveate.models.roofline.analyze import attach_measured
    from foveate.models.roofline.measure import profile_nodes

    proto = export(TinyNet())
    layers = predict(analyze(proto), load_hardware("local"))
    per, wall_ms = profile_nodes(proto, {"x": inputs(1)[0][None]}, threads=1, runs=3)
    unmatched = attach_measured(layers, per)
    measured = [x for x in layers if x.measured_us is not None]
    assert wall_ms > 0 and per and all(v >= 0 for v in per.values())
    # every onnxruntime node lands on a layer (fused groups on the layer named after their output)
    assert len(measured) >= 4 and unmatched <= sum(per.values())
    assert {x.op for x in measured} & {"Conv", "Relu", "Sigmoid", "MaxPool", "Add"}
