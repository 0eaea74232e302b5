"""Static QDQ quantization: recipe, float-kept nodes, CPU-dependent reduce_range, fused-kernel check."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from foveate.models.quant.check import kernel_agreement
from foveate.models.quant.cpu import detect
from foveate.models.quant.ptq import QuantRecipe, float_nodes, quantize_model, recipe_of, session
from foveate.system.errors import ConfigError

from .nets import TinyNet, export, inputs


@pytest.fixture(scope="module")
def tiny():
    return export(TinyNet())


def _run(proto, xs):
    s = session(proto, 1)
    return np.concatenate([s.run(None, {"x": x[None]})[0] for x in xs])


def test_int8_model_is_quantized_close_to_float_and_keeps_head_float(tiny):
    xs = inputs(12)
    q = quantize_model(tiny, [x[None] for x in xs[:8]], QuantRecipe(method="minmax"))
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("QuantizeLinear") >= 4 and "DequantizeLinear" in ops
    inits = {i.name: i for i in q.graph.initializer}
    int8_weights = [i for i in inits.values() if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert len(int8_weights) == 5  # every conv but the head
    # the head conv and the final sigmoid stay float
    kept = recipe_of(q)["float_nodes"]
    assert any("head" in k for k in kept) and any("Sigmoid" in k for k in kept)
    y, yq = _run(tiny, xs[8:]), _run(q, xs[8:])
    assert np.abs(y - yq).mean() < 0.03 and not np.allclose(y, yq, atol=1e-7)  # extreme ranges on purpose


def test_recipe_travels_in_metadata_and_validates(tiny):
    q = quantize_model(tiny, [inputs(1)], QuantRecipe(method="percentile", percentile=99.9))
    meta = recipe_of(q)
    assert meta["recipe"]["method"] == "percentile" and meta["recipe"]["percentile"] == 99.9
    assert meta["calibration"]["n"] == 1 and "VNNI" in meta["cpu"] or "no u8s8" in meta["cpu"]
    assert recipe_of(tiny) is None
    with pytest.raises(ConfigError, match="calibration method"):
        QuantRecipe(method="kl")
    with pytest.raises(ConfigError, match="weight_bits"):
        QuantRecipe(weight_bits=2)
    with pytest.raises(ConfigError, match="unknown quantization recipe key 'bits'"):
        QuantRecipe.from_dict({"bits": 4})
    with pytest.raises(ConfigError, match="no node named"):
        float_nodes(tiny, ["/nope/Conv"])
    with pytest.raises(ConfigError, match="empty"):
        quantize_model(tiny, [], QuantRecipe())


def test_w4a8_stores_4bit_weights_and_an_8bit_first_conv(tiny):
    q = quantize_model(tiny, [x[None] for x in inputs(4)], QuantRecipe(weight_bits=4, method="minmax"))
    weights = {i.name: i for i in q.graph.initializer if len(i.dims) == 4 and i.name.endswith("_quantized")}
    first = next(n for n in tiny.graph.node if n.op_type == "Conv").input[1]  # reads the model input
    assert weights.pop(first + "_quantized").data_type == onnx.TensorProto.INT8
    assert len(weights) == 4 and all(i.data_type == onnx.TensorProto.INT4 for i in weights.values())
    all4 = quantize_model(tiny, [x[None] for x in inputs(4)], QuantRecipe(weight_bits=4, method="minmax",
                                                                         input_conv_bits=4))
    assert sum(i.data_type == onnx.TensorProto.INT4 and len(i.dims) == 4 for i in all4.graph.initializer) == 5
    with pytest.raises(ConfigError, match="input_conv_bits 4 below weight_bits 8"):
        QuantRecipe(input_conv_bits=4)
    q8 = quantize_model(tiny, [x[None] for x in inputs(4)], QuantRecipe(weight_bits=8, method="minmax"))
    xs = inputs(3, seed=5)
    y = _run(tiny, xs)
    e4, e8 = np.abs(_run(q, xs) - y).mean(), np.abs(_run(q8, xs) - y).mean()
    assert e8 < e4 < 0.2  # coarser than INT8, far from garbage (an unrelated output is ~0.3 off)


def test_u8u8_weights_are_unsigned(tiny):
    q = quantize_model(tiny, [x[None] for x in inputs(4)], QuantRecipe(method="minmax", u8u8=True))
    w = [i for i in q.graph.initializer if len(i.dims) == 4 and i.name.endswith("_quantized")]
    assert len(w) == 5 and all(i.data_type == onnx.TensorProto.UINT8 for i in w)  # the head stays float
    assert recipe_of(q)["reduce_range"] is False
    assert kernel_agreement(q, inputs(2, seed=3))["ok"]
    with pytest.raises(ConfigError, match="u8u8"):
        QuantRecipe(u8u8=True, weight_bits=4)


def test_reduce_range_follows_vnni(tmp_path):
    def cpu(flags):
        p = tmp_path / "cpuinfo"
        p.write_text(f"processor : 0\nflags\t\t: {flags}\n")
        return detect(p)

    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("x86 flag logic")
    assert cpu("sse2 avx2 fma").needs_reduce_range
    assert not cpu("avx2 avx512f avx512_vnni").needs_reduce_range
    assert not cpu("avx2 avx_vnni").needs_reduce_range


def test_fused_kernels_agree_with_reference_arithmetic(tiny):
    xs = inputs(8, seed=2)
    q = quantize_model(tiny, [x[None] for x in xs[:6]], QuantRecipe(method="minmax", reduce_range=detect().needs_reduce_range))
    res = kernel_agreement(q, xs[6:])
    assert res["ok"], res
    assert json.dumps(res)


def test_detector_input_standardization_stays_float_and_its_first_conv_keeps_8_bits(tmp_path):
    from foveate.models.detector.config import DetectorConfig
    from foveate.models.detector.export import export_onnx
    from foveate.models.detector.model import DetectorNet
    from foveate.models.quant.ptq import input_convs

    proto = export_onnx(DetectorNet(DetectorConfig(input_size=(64, 64), widths=(4, 8, 8, 8, 8), neck=8, head=8,
                                                   input_norm="standardize")).eval())
    norm = {n.name for n in proto.graph.node if n.name.startswith("/net/input_norm/")}
    assert {"/net/input_norm/ReduceMean", "/net/input_norm/Div"} <= norm
    assert norm <= set(float_nodes(proto))
    stem = next(n for n in proto.graph.node if n.op_type == "Conv").input[1]
    assert input_convs(proto) == {stem: 4}  # reads the input through the float standardization
