"""Spikes in the INT8 graph: LIF thresholds folded into the convolution's requantisation.

A spiking layer at T = 1 is ``s = [u > θ]`` on the membrane ``u`` (SLTNet exports it as
``Greater`` + ``Cast``). After onnxruntime's static QDQ quantization, a conv that feeds a LIF
reads ``QLinearConv → DequantizeLinear → Greater → Cast → QuantizeLinear →
DequantizeLinear → next QLinearConv``: five element-wise nodes per spike layer, the
membrane rounded to 8 bits before the comparison, and the spikes requantised with a
calibrated scale (0/1 become 0/≈1).

:func:`fuse_spikes` rewrites that pattern so the integer conv emits the spikes itself:

- The conv's int32 bias (scale ``s_x·s_w[c]``) is lowered by ``⌊θ / (s_x·s_w[c])⌋``. With the
  integer accumulator ``a`` (bias included), ``u = a·s_x·s_w[c] > θ`` exactly when the
  shifted accumulator is ≥ 1.
- The conv's output QuantizeLinear gets scale ``min_c(s_x·s_w[c]) / 256`` and zero point 0:
  a shifted accumulator ≥ 1 saturates to 255, one ≤ 0 gives 0. The comparison happens on the
  exact int32 accumulator, finer than the 8-bit membrane it replaces.
- A DequantizeLinear with scale 1/255 turns the u8 {0, 255} back into float {0.0, 1.0}
  exactly (255 · float32(1/255) rounds to 1.0), so float consumers (gates, pools) see the
  same spikes, and the next conv fuses it as its input quantizer (spikes exact in u8).

Spikes that do not come from a conv (a LIF after a batch norm on a residual sum) keep their
``Greater`` and are cast straight to uint8 with a DequantizeLinear of scale 1 (0/1 exact),
which replaces the float cast and the calibrated QuantizeLinear.

Both rewrites leave a standard QDQ graph: onnxruntime's reference (unfused) arithmetic and
its fused kernels still agree (:func:`foveate.models.quant.check.kernel_agreement`), and
the equivalence with the integer threshold is tested in ``tests/quant/test_spikes.py``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SPIKE_SCALE = np.float32(1.0 / 255.0)  # u8 255 -> 1.0 exactly in float32


def _const(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """An initializer's or a Constant node's value (None when ``name`` is computed)."""
    for i in graph.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            attr = next((a for a in n.attribute if a.name == "value"), None)
            return numpy_helper.to_array(attr.t) if attr is not None else None
    return None


def _scalar_threshold(graph, name: str) -> float | None:
    v = _const(graph, name)
    return float(v.reshape(-1)[0]) if v is not None and v.size == 1 else None


class _Graph:
    def __init__(self, proto: onnx.ModelProto) -> None:
        self.p = proto
        self.g = proto.graph
        self.inits = {i.name: i for i in self.g.initializer}
        self.refresh()

    def refresh(self) -> None:
        self.producer = {o: n for n in self.g.node for o in n.output}
        self.cons: dict[str, list] = {}
        for n in self.g.node:
            for i in n.input:
                self.cons.setdefault(i, []).append(n)
        self.outputs = {o.name for o in self.g.output}

    def arr(self, name: str) -> np.ndarray | None:
        i = self.inits.get(name)
        return numpy_helper.to_array(i) if i is not None else _const(self.g, name)

    def set_init(self, name: str, value: np.ndarray) -> None:
        t = numpy_helper.from_array(value, name)
        if name in self.inits:
            self.inits[name].CopyFrom(t)
        else:
            self.g.initializer.append(t)
            self.inits[name] = self.g.initializer[-1]

    def only(self, tensor: str):
        c = self.cons.get(tensor, [])
        return c[0] if len(c) == 1 and tensor not in self.outputs else None

    def rewire(self, old: str, new: str) -> None:
        for n in self.cons.get(old, []):
            for k, i in enumerate(n.input):
                if i == old:
                    n.input[k] = new


def _quantized_conv(G: _Graph, q_node) -> tuple | None:
    """(conv, s_x, s_w, bias DQ node or None) when ``q_node`` quantizes a QDQ conv's output."""
    conv = G.producer.get(q_node.input[0])
    if conv is None or conv.op_type != "Conv" or G.only(conv.output[0]) is not q_node:
        return None
    dq_x, dq_w = G.producer.get(conv.input[0]), G.producer.get(conv.input[1])
    if dq_x is None or dq_w is None or dq_x.op_type != "DequantizeLinear" or dq_w.op_type != "DequantizeLinear":
        return None
    s_x, s_w = G.arr(dq_x.input[1]), G.arr(dq_w.input[1])
    if s_x is None or s_w is None or s_x.size != 1 or G.arr(dq_w.input[0]) is None:
        return None
    bias_dq = G.producer.get(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
    if bias_dq is not None and (bias_dq.op_type != "DequantizeLinear" or G.arr(bias_dq.input[0]) is None):
        return None
    return conv, float(s_x.reshape(())), s_w.astype(np.float64).reshape(-1), bias_dq


def fuse_spikes(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """Fold ``Greater(u, θ) → Cast`` spike layers into the QDQ graph (see the module docstring).

    Returns the rewritten copy and counts: ``conv_spikes`` (thresholds folded into a conv),
    ``cast_spikes`` (other spike layers cast straight to uint8), ``requant_removed`` (calibrated
    spike Q/DQ pairs dropped).
    """
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    G = _Graph(p)
    stats = {"conv_spikes": 0, "cast_spikes": 0, "requant_removed": 0, "bn_thresholds": 0}
    for greater in [n for n in G.g.node if n.op_type == "Greater"]:  # topological order
        G.refresh()
        cast = G.only(greater.output[0])
        if cast is None or cast.op_type != "Cast" or helper.get_attribute_value(cast.attribute[0]) != TensorProto.FLOAT:
            continue
        theta = _scalar_threshold(G.g, greater.input[1])
        if theta is not None and _fold_bn_threshold(G, greater, theta):
            stats["bn_thresholds"] += 1
            theta = None  # per-channel now
        spike = cast.output[0]
        dq_u = G.producer.get(greater.input[0])
        q_u = G.producer.get(dq_u.input[0]) if dq_u is not None and dq_u.op_type == "DequantizeLinear" else None
        fused = None
        if theta is not None and q_u is not None and q_u.op_type == "QuantizeLinear" and G.only(q_u.output[0]) is dq_u and \
                G.only(dq_u.output[0]) is greater:
            fused = _quantized_conv(G, q_u)
        if fused is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = theta / (fused[1] * fused[2])
            if not np.all(np.isfinite(ratio)):
                fused = None  # a channel with a zero scale (dead weights): keep the comparison as it is
        if fused is not None:
            conv, s_x, s_w, bias_dq = fused
            step = s_x * s_w  # real value of one accumulator unit, per output channel
            shift = np.floor(np.clip(ratio, -2.0**40, 2.0**40)).astype(np.int64)  # dead channels: huge
            if bias_dq is None:
                name = f"{conv.name}_spike_bias"
                G.set_init(name + "_quantized", (-shift).astype(np.int32))
                G.set_init(name + "_scale", step.astype(np.float32))
                G.set_init(name + "_zero_point", np.zeros(len(step), np.int32))
                G.g.node.append(helper.make_node("DequantizeLinear", [name + "_quantized", name + "_scale",
                                                                      name + "_zero_point"], [name], axis=0,
                                                 name=name + "_DequantizeLinear"))
                if len(conv.input) < 3:
                    conv.input.append(name)
                else:
                    conv.input[2] = name
            else:
                b = G.arr(bias_dq.input[0]).astype(np.int64)
                G.set_init(bias_dq.input[0], np.clip(b - shift, -2**31, 2**31 - 1).astype(np.int32))
            q_name = f"{conv.output[0]}_spike"
            G.set_init(q_name + "_scale", np.float32(step.min() / 256.0))
            G.set_init(q_name + "_zero_point", np.uint8(0))
            q_u.input[1], q_u.input[2] = q_name + "_scale", q_name + "_zero_point"
            dq_u.input[1], dq_u.input[2] = _spike_dq_params(G)
            dq_u.output[0] = spike  # the DQ now yields the spikes
            for n in (greater, cast):
                G.g.node.remove(n)
            stats["conv_spikes"] += 1
        elif any(c.op_type == "QuantizeLinear" for c in G.cons.get(spike, [])):
            # spikes from a float tensor, quantized for a conv: u8 {0, 255} straight from the comparison
            u8 = f"{spike}_u8"
            hi, lo = f"{spike}_u8_on", f"{spike}_u8_off"
            G.set_init(hi, np.uint8(255))
            G.set_init(lo, np.uint8(0))
            where = helper.make_node("Where", [greater.output[0], hi, lo], [u8], name=cast.name)
            G.g.node.remove(cast)
            G.g.node.append(where)
            G.g.node.append(helper.make_node("DequantizeLinear", [u8, *_spike_dq_params(G)], [spike],
                                             name=f"{spike}_u8_DequantizeLinear"))
            stats["cast_spikes"] += 1
        G.refresh()
        stats["requant_removed"] += _drop_spike_requant(G, spike)
    from foveate.models.sltnet.onnx_lean import tidy

    return tidy(p), stats


def _fold_bn_threshold(G: _Graph, greater, theta: float) -> bool:
    """``BatchNormalization(x) > θ`` → ``x > θ_c`` (or ``x < θ_c`` where every BN scale is negative):
    the batch norm on a real-valued stream becomes per-channel thresholds. Mixed signs: left alone."""
    bn = G.producer.get(greater.input[0])
    if bn is None or bn.op_type != "BatchNormalization" or G.only(bn.output[0]) is not greater:
        return False
    gamma, beta, mean, var = (G.arr(i) for i in bn.input[1:5])
    if any(v is None for v in (gamma, beta, mean, var)):
        return False
    eps = next((helper.get_attribute_value(a) for a in bn.attribute if a.name == "epsilon"), 1e-5)
    a = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    b = beta.astype(np.float64) - mean.astype(np.float64) * a
    if not (np.all(a > 0) or np.all(a < 0)):
        return False
    name = f"{bn.name}_threshold"
    G.set_init(name, ((theta - b) / a).astype(np.float32).reshape(-1, 1, 1))
    greater.input[0], greater.input[1] = bn.input[0], name
    if np.all(a < 0):
        greater.op_type = "Less"
    G.g.node.remove(bn)
    return True


def _spike_dq_params(G: _Graph) -> tuple[str, str]:
    s, z = "spike_u8_scale", "spike_u8_zero_point"
    if s not in G.inits:
        G.set_init(s, SPIKE_SCALE)
        G.set_init(z, np.uint8(0))
    return s, z


def _drop_spike_requant(G: _Graph, spike: str) -> int:
    """Q(spike) → DQ pairs after an exact spike DQ: their consumers read the spike DQ directly."""
    dq_spike = G.producer[spike]
    removed = 0
    for q in [n for n in G.cons.get(spike, []) if n.op_type == "QuantizeLinear"]:
        dqs = G.cons.get(q.output[0], [])
        if q.output[0] in G.outputs or not dqs or any(d.op_type != "DequantizeLinear" or d.output[0] in G.outputs
                                                      for d in dqs):
            continue
        for d in dqs:
            # the consumer gets its own copy of the exact spike DQ (onnxruntime fuses one DQ per node unit)
            d.input[0], d.input[1] = dq_spike.input[0], dq_spike.input[1]
            d.input[2] = dq_spike.input[2]
            for conv in G.cons.get(d.output[0], []):
                if conv.op_type in ("Conv", "ConvTranspose") and conv.input[0] == d.output[0]:
                    _rescale_bias(G, conv, float(SPIKE_SCALE))
        G.g.node.remove(q)
        removed += 1
    return removed


def _rescale_bias(G: _Graph, conv, s_x: float) -> None:
    """Requantize a QDQ conv's int32 bias to scale ``s_x · s_w`` after its input scale changed
    (onnxruntime fuses DQ → Conv → Q into an integer conv only when the bias scale is that product)."""
    if len(conv.input) < 3 or not conv.input[2]:
        return
    dq_b, dq_w = G.producer.get(conv.input[2]), G.producer.get(conv.input[1])
    if dq_b is None or dq_w is None or dq_b.op_type != "DequantizeLinear" or dq_w.op_type != "DequantizeLinear":
        return
    q_b, s_b, s_w = G.arr(dq_b.input[0]), G.arr(dq_b.input[1]), G.arr(dq_w.input[1])
    if q_b is None or s_b is None or s_w is None:
        return
    real = q_b.astype(np.float64) * s_b.astype(np.float64)
    scale = (np.float64(s_x) * s_w.astype(np.float64)).astype(np.float32)
    G.set_init(dq_b.input[0], np.clip(np.rint(real / scale.astype(np.float64)), -2**31, 2**31 - 1).astype(np.int32))
    G.set_init(dq_b.input[1], scale.reshape(s_b.shape))
