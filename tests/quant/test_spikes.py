"""Spike layers in the INT8 graph: thresholds folded into the integer conv are exact; BN thresholds."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from foveate.models.quant.ptq import QuantRecipe, quantize_model, recipe_of, session
from foveate.models.quant.spikes import SPIKE_SCALE, fuse_spikes

THETA = 0.5


class SpikeNet(nn.Module):
    """1x1 conv → LIF → 3x3 conv (+ skip) → BN → LIF → 1x1 head: both kinds of spike layer."""

    def __init__(self, bn_sign: float = 1.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1 = nn.Conv2d(4, 6, 1)
        self.c2 = nn.Conv2d(6, 6, 3, padding=1)
        self.skip = nn.Conv2d(4, 6, 1)
        self.bn = nn.BatchNorm2d(6)
        self.head = nn.Conv2d(6, 3, 1)
        with torch.no_grad():
            for m in (self.c1, self.c2, self.skip, self.head):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.6)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.3)
            self.bn.weight.copy_(bn_sign * (torch.rand(6, generator=g) + 0.5))
            self.bn.bias.copy_(torch.randn(6, generator=g) * 0.2)
            self.bn.running_mean.copy_(torch.randn(6, generator=g) * 0.3)
            self.bn.running_var.copy_(torch.rand(6, generator=g) + 0.5)

    def forward(self, x):
        s1 = (self.c1(x) > THETA).float()
        r = self.c2(s1) + self.skip(x)
        s2 = (self.bn(r) > THETA).float()
        return self.head(s2)


def _export(net: nn.Module) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(1, 4, 8, 8),), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    return onnx.load_from_string(buf.getvalue())


def _inputs(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 4, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def pair():
    proto = _export(SpikeNet())
    calib = [x[None] for x in _inputs(8)]
    q, unfused = quantize_model(proto, calib, QuantRecipe(method="minmax", op_types=("Conv",), keep_head_float=False),
                                 return_unfused=True)
    return proto, q, unfused


def _with_outputs(proto, names):
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    for t in names:
        p.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    return p


def test_both_kinds_of_spike_layer_are_rewritten(pair):
    _, q, unfused = pair
    spikes = recipe_of(q)["spikes"]
    assert spikes == {"conv_spikes": 1, "cast_spikes": 1, "requant_removed": 2, "bn_thresholds": 1}
    ops = [n.op_type for n in q.graph.node]
    assert "BatchNormalization" not in ops and "Cast" not in ops
    assert ops.count("Greater") == 1  # only the BN-stream spike layer keeps a comparison (per channel)
    assert len(q.graph.node) < len(unfused.graph.node)
    assert recipe_of(unfused)["spikes"] == spikes  # the unfused graph says what was done to the shipped one


def test_conv_threshold_is_the_exact_integer_comparison(pair):
    """The fused conv's u8 output is 255 exactly where the int32 accumulator times s_x·s_w exceeds θ."""
    _, q, unfused = pair
    g = unfused.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    prod = {o: n for n in g.node for o in n.output}
    conv = next(n for n in g.node if n.name == "/c1/Conv")
    dq_x, dq_w, dq_b = (prod[i] for i in conv.input)
    q_x = prod[dq_x.input[0]]  # the input quantizer
    s_x, zp_x = float(inits[dq_x.input[1]]), int(inits[dq_x.input[2]])
    w_q, s_w = inits[dq_w.input[0]].astype(np.int64)[:, :, 0, 0], inits[dq_w.input[1]].astype(np.float64)
    b_q = inits[dq_b.input[0]].astype(np.int64)
    # the fused graph: the conv's u8 output (its spikes) and their DequantizeLinear
    qg = q.graph
    q_prod = {o: n for n in qg.node for o in n.output}
    spike_dq = next(n for n in qg.node if n.op_type == "DequantizeLinear" and n.input[0] in q_prod
                    and q_prod[n.input[0]].op_type == "QuantizeLinear"
                    and q_prod[n.input[0]].input[0] == conv.output[0])
    probe = _with_outputs(q, [q_x.output[0], spike_dq.input[0], spike_dq.output[0]])
    fused = session(probe, 1, optimize=True)
    total = 0
    for x in _inputs(6, seed=11):
        _, xq, s_u8, s_f = fused.run(None, {"x": x[None]})
        acc = np.einsum("oc,chw->ohw", w_q, xq[0].astype(np.int64) - zp_x) + b_q[:, None, None]
        want = acc * s_x * s_w[:, None, None] > THETA
        assert set(np.unique(s_u8)) <= {0, 255}
        np.testing.assert_array_equal(s_u8[0] == 255, want)
        np.testing.assert_array_equal(s_f[0], want.astype(np.float32))  # the DQ gives exact 0.0 / 1.0
        total += want.size
    assert total == 6 * 6 * 64 and float(SPIKE_SCALE) * 255 == np.float32(1.0)


def test_fused_model_stays_close_to_float_and_kernels_agree_unfused(pair):
    from foveate.models.quant.check import kernel_agreement

    proto, q, unfused = pair
    xs = _inputs(16, seed=3)
    f, a = session(proto, 1), session(q, 1)
    y = np.concatenate([f.run(None, {"x": x[None]})[0] for x in xs])
    yq = np.concatenate([a.run(None, {"x": x[None]})[0] for x in xs])
    rel = np.linalg.norm(yq - y) / np.linalg.norm(y)
    assert rel < 0.25, rel  # a few spikes flip at the 8-bit input quantization; garbage would be ~1.4
    assert kernel_agreement(unfused, xs[:4], 1)["ok"]


@pytest.mark.parametrize("sign, op", [(1.0, "Greater"), (-1.0, "Less")])
def test_bn_threshold_fold_matches_bn_then_compare(sign, op):
    proto = _export(SpikeNet(bn_sign=sign))
    folded, stats = fuse_spikes(proto)  # a float graph: only the batch norm is folded
    assert stats["bn_thresholds"] == 1 and stats["conv_spikes"] == 0
    assert op in [n.op_type for n in folded.graph.node]
    assert "BatchNormalization" not in [n.op_type for n in folded.graph.node]
    xs = _inputs(32, seed=4)
    a, b = session(proto, 1), session(folded, 1)
    y = np.concatenate([a.run(None, {"x": x[None]})[0] for x in xs])
    yf = np.concatenate([b.run(None, {"x": x[None]})[0] for x in xs])
    assert np.abs(y - yf).max() < 1e-5  # same spikes (ties at float rounding would show as jumps)


def test_mixed_sign_batch_norm_is_left_alone():
    net = SpikeNet()
    with torch.no_grad():
        net.bn.weight[0] = -net.bn.weight[0]
    folded, stats = fuse_spikes(_export(net))
    assert stats["bn_thresholds"] == 0
    assert "BatchNormalization" in [n.op_type for n in folded.graph.node]


def test_without_fusion_the_graph_keeps_its_spike_ops():
    proto = _export(SpikeNet())
    q = quantize_model(proto, [x[None] for x in _inputs(4)], QuantRecipe(method="minmax", op_types=("Conv",),
                                                                        fuse_spikes=False))
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("Greater") == 2 and ops.count("Cast") == 2 and recipe_of(q)["spikes"] is None
