"""Per-layer roofline of an ONNX graph (LLM-Viewer's method, for conv and spiking graphs).

For every node: operations (a multiply-add counts 2), bytes moved (weights + inputs +
outputs at their storage width), arithmetic intensity AI = ops/bytes, the bound (memory if
AI < peak/bandwidth, else compute) and a predicted time ``max(ops/peak, bytes/bw) + dispatch``.

Quantized (QDQ) graphs: a Conv/ConvTranspose/MatMul/Gemm fed by DequantizeLinear runs as an
INT8 kernel (onnxruntime fuses DQ→op→Q): its weights and inputs count 1 byte (or ½ for 4-bit
weights, which onnxruntime still dequantizes to float: those run at the FP32 peak), its ops
use the INT8 peak. Q/DQ nodes on initializers (weight dequantization) and those fused into a
quantized op cost nothing; the remaining Q/DQ nodes are element-wise passes.

SLTNet's exported graphs unroll T, so T is in the node list already; LIF steps appear as
Mul/Add/Greater/Cast/Sub nodes, each an element-wise pass reading and writing the membrane.
Constant nodes are skipped (folded at load); shape-only nodes (Shape, Reshape, Unsqueeze, ...) cost a dispatch and nothing else.
The result is a lower bound for a runtime that reaches the peaks; compare with
:func:`foveate.models.roofline.measure.profile_nodes`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from foveate.system.errors import ConfigError

MATMUL_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
SHAPE_ONLY = {"Shape", "Constant", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "ConstantOfShape",
              "Gather", "Slice", "Concat", "Expand", "Transpose", "Split", "Range"}
ELEMENT_COST = {"Sigmoid": 4, "Exp": 4, "Tanh": 4, "Softmax": 5, "Erf": 4, "Div": 1, "Sqrt": 1, "Pow": 2,
                "QuantizeLinear": 2, "DequantizeLinear": 2}
Q_OPS = ("QuantizeLinear", "DequantizeLinear")
DTYPE_BYTES = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.INT8: 1,
               onnx.TensorProto.UINT8: 1, onnx.TensorProto.INT64: 8, onnx.TensorProto.INT32: 4,
               onnx.TensorProto.BOOL: 1, onnx.TensorProto.DOUBLE: 8, onnx.TensorProto.INT4: 0.5,
               onnx.TensorProto.UINT4: 0.5}


@dataclass
class Layer:
    name: str
    op: str
    ops: float
    bytes: float
    precision: str  # fp32 | int8 | w4 | none
    ai: float = 0.0
    bound: str = ""
    predicted_us: float = 0.0
    measured_us: float | None = None
    outputs: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Hardware:
    name: str
    bandwidth_gbs: float
    fp32_gops: float
    int8_gops: float
    dispatch_us: float
    description: str = ""
    source: str = ""

    def peak(self, precision: str) -> float:
        return self.int8_gops if precision == "int8" else self.fp32_gops


def load_hardware(name: str, table: str | Path | None = None) -> Hardware:
    """A profile from the YAML table (``hardware.yaml`` beside this module, or ``table``).

    ``local`` prefers the probe result cached by ``foveate roofline --probe``.
    """
    import yaml

    from foveate.models.roofline.measure import LOCAL_PROFILE

    path = Path(table) if table else Path(__file__).with_name("hardware.yaml")
    try:
        rows = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read hardware table ({exc})") from None
    if name == "local" and table is None and LOCAL_PROFILE.is_file():
        rows = {**rows, "local": yaml.safe_load(LOCAL_PROFILE.read_text())}
    if name not in rows:
        raise ConfigError(f"{path}: no hardware profile '{name}' (have: {', '.join(sorted(rows))})")
    row = rows[name]
    need = ("bandwidth_gbs", "fp32_gops", "int8_gops", "dispatch_us")
    for k in need:
        if not isinstance(row.get(k), (int, float)) or row[k] < 0:
            raise ConfigError(f"{path}: {name}.{k} must be a non-negative number")
    return Hardware(name, *(float(row[k]) for k in need), row.get("description", ""), row.get("source", ""))


def hardware_names(table: str | Path | None = None) -> list[str]:
    import yaml

    return sorted(yaml.safe_load((Path(table) if table else Path(__file__).with_name("hardware.yaml")).read_text()))


def _fix_batch(proto: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    inits = {i.name for i in p.graph.initializer}
    for i in p.graph.input:
        if i.name in inits:
            continue
        for d in i.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.dim_value = batch
    return p


def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[tuple[int, ...], int]]:
    inferred = shape_inference.infer_shapes(proto, data_prop=True)
    known = {vi.name for vi in inferred.graph.value_info}
    if any(o not in known for n in inferred.graph.node for o in n.output if o):
        return _shapes_by_running(proto)  # traced Reshape targets defeat static inference
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            out[vi.name] = (tuple(d.dim_value for d in t.shape.dim), t.elem_type)
    for init in proto.graph.initializer:
        out[init.name] = (tuple(init.dims), init.data_type)
    return out


def _shapes_by_running(proto: onnx.ModelProto) -> dict[str, tuple[tuple[int, ...], int]]:
    """Every tensor's shape from one onnxruntime run on zeros (no graph optimisation)."""
    import onnxruntime as ort
    from onnx import helper

    p = onnx.ModelProto()
    p.CopyFrom(proto)
    have = {o.name for o in p.graph.output}
    for n in p.graph.node:
        for o in n.output:
            if o and o not in have:
                p.graph.output.append(helper.make_empty_tensor_value_info(o))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(p.SerializeToString(), so, providers=["CPUExecutionProvider"])
    inits = {i.name for i in proto.graph.initializer}
    feeds = {}
    for i in proto.graph.input:
        if i.name in inits:
            continue
        t = i.type.tensor_type
        feeds[i.name] = np.zeros([d.dim_value for d in t.shape.dim], helper.tensor_dtype_to_np_dtype(t.elem_type))
    names = [o.name for o in sess.get_outputs()]
    out = {}
    for name, v in zip(names, sess.run(names, feeds)):
        v = np.asarray(v)
        out[name] = (tuple(v.shape), helper.np_dtype_to_tensor_dtype(v.dtype))
    for name, v in feeds.items():
        out[name] = (tuple(v.shape), helper.np_dtype_to_tensor_dtype(v.dtype))
    for init in proto.graph.initializer:
        out[init.name] = (tuple(init.dims), init.data_type)
    return out


def _nbytes(entry) -> float:
    shape, dtype = entry
    return float(np.prod(shape)) * DTYPE_BYTES.get(dtype, 4)


def analyze(model: str | Path | bytes | onnx.ModelProto, batch: int = 1) -> list[Layer]:
    """Per-node ops, bytes and precision (no hardware yet; see :func:`predict`)."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    else:
        try:
            proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
        except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and friends
            raise ConfigError(f"{model if not isinstance(model, bytes) else '<bytes>'}: not an ONNX model ({exc})") from None
    proto = _fix_batch(proto, batch)
    shapes = _shapes(proto)
    inits = {i.name: i for i in proto.graph.initializer}
    producer = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def is_dq(name: str) -> bool:
        p = producer.get(name)
        return p is not None and p.op_type == "DequantizeLinear"

    def weight_of(name: str):
        """(initializer tensor, bytes per element) behind a weight input (direct or via DQ)."""
        if name in inits:
            return inits[name], DTYPE_BYTES.get(inits[name].data_type, 4)
        p = producer.get(name)
        if p is not None and p.op_type == "DequantizeLinear" and p.input[0] in inits:
            t = inits[p.input[0]]
            return t, DTYPE_BYTES.get(t.data_type, 1)
        return None, 4

    fused: set[str] = set()
    layers: list[Layer] = []
    nodes = [n for n in proto.graph.node if n.op_type != "Constant"]  # constants are folded at load time
    for n in nodes:
        if n.op_type in MATMUL_OPS:
            w, wb = weight_of(n.input[1])
            xin = n.input[0]
            q_in = is_dq(xin)
            out = n.output[0]
            q_out = any(c.op_type == "QuantizeLinear" for c in consumers.get(out, []))
            if q_in:
                fused.add(producer[xin].name)
            for c in consumers.get(out, []):
                if c.op_type == "QuantizeLinear":
                    fused.add(c.name)
            if is_dq(n.input[1]):
                fused.add(producer[n.input[1]].name)
            if xin not in shapes or out not in shapes:
                raise ConfigError(f"node {n.name}: shapes unknown after shape inference (is the model complete?)")
            xs, ys = shapes[xin][0], shapes[out][0]
            wshape = tuple(w.dims) if w is not None else shapes.get(n.input[1], ((0,), 1))[0]
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            if n.op_type == "Conv":
                macs = float(np.prod(ys)) * float(np.prod(wshape[1:]))
            elif n.op_type == "ConvTranspose":
                macs = float(np.prod(xs)) * float(np.prod(wshape[1:]))
            else:  # MatMul / Gemm: out elements x K
                k = xs[-1] if not attrs.get("transA") else xs[-2]
                macs = float(np.prod(ys)) * k
            int8 = q_in and wb <= 1
            prec = "int8" if int8 and wb == 1 else ("w4" if wb < 1 else "fp32")
            ab = 1 if q_in else 4
            ob = 1 if q_out else 4
            wbytes = float(np.prod(wshape)) * (wb if w is not None else 4)
            bias = weight_of(n.input[2])[0] if len(n.input) > 2 and n.input[2] else None
            bbytes = float(np.prod(bias.dims)) * DTYPE_BYTES.get(bias.data_type, 4) if bias is not None else 0.0
            byt = wbytes + bbytes + float(np.prod(xs)) * ab + float(np.prod(ys)) * ob
            layers.append(Layer(n.name or out, n.op_type, 2.0 * macs, byt, prec, outputs=tuple(n.output)))
        elif n.op_type in SHAPE_ONLY:
            layers.append(Layer(n.name or n.output[0], n.op_type, 0.0, 0.0, "none", outputs=tuple(n.output)))
        else:
            layers.append(None)  # element-wise: after the fused set is known
    # second pass for element-wise nodes (Q/DQ fusion known now)
    out_layers: list[Layer] = []
    for n, lay in zip(nodes, layers):
        if lay is not None:
            out_layers.append(lay)
            continue
        if n.op_type in Q_OPS and (n.name in fused or n.input[0] in inits):
            continue  # folded into the quantized kernel or the weights
        outs = [shapes[o] for o in n.output if o in shapes]
        ins = [shapes[i] for i in n.input if i in shapes and i not in inits]
        elems = sum(float(np.prod(s)) for s, _ in outs)
        ops = elems * ELEMENT_COST.get(n.op_type, 1)
        if n.op_type in ("MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "ReduceSum"):
            ops = sum(float(np.prod(s)) for s, _ in ins)
        byt = sum(_nbytes(e) for e in ins) + sum(_nbytes(e) for e in outs)
        out_layers.append(Layer(n.name or n.output[0], n.op_type, ops, byt, "fp32", outputs=tuple(n.output)))
    return out_layers


def predict(layers: list[Layer], hw: Hardware) -> list[Layer]:
    """Fill AI, bound and predicted time of every layer for ``hw`` (in place; returns the list)."""
    bw = hw.bandwidth_gbs * 1e9
    for lay in layers:
        if lay.precision == "none":
            lay.ai, lay.bound, lay.predicted_us = 0.0, "dispatch", hw.dispatch_us
            continue
        peak = hw.peak(lay.precision) * 1e9
        lay.ai = lay.ops / lay.bytes if lay.bytes else float("inf")
        t_c, t_m = lay.ops / peak, lay.bytes / bw
        lay.bound = "compute" if t_c >= t_m else "memory"
        lay.predicted_us = 1e6 * max(t_c, t_m) + hw.dispatch_us
    return layers


def attach_measured(layers: list[Layer], per_node_us: dict[str, float]) -> float:
    """Give each layer the measured time of the onnxruntime node that carries its name or output.

    onnxruntime renames fused nodes after their output tensor (Conv+ReLU is named after the
    ReLU's output, a QDQ group after its QuantizeLinear output, layout-converted ones get
    ``_nchwc``): the time of a fused group lands on the layer whose output it is. Returns
    the measured µs that matched no layer (layout reorders and other inserted nodes).
    """
    by_key: dict[str, Layer] = {}
    for lay in layers:
        lay.measured_us = None
        by_key[lay.name] = lay
        for o in lay.outputs:
            by_key.setdefault(o, lay)
    unmatched = 0.0
    for name, us in per_node_us.items():
        key = name
        for suffix in ("_nchwc", "_token"):
            if suffix in key and key not in by_key:
                key = key[:key.index(suffix)]
        for cand in (key, key.removesuffix("_QuantizeLinear_Output"), key.replace("_QuantizeLinear_Output", "")):
            if cand in by_key:
                lay = by_key[cand]
                lay.measured_us = (lay.measured_us or 0.0) + us
                break
        else:
            unmatched += us
    return unmatched


def summary(layers: list[Layer], hw: Hardware) -> dict:
    tot_ops = sum(x.ops for x in layers)
    tot_bytes = sum(x.bytes for x in layers)
    pred = sum(x.predicted_us for x in layers)
    disp = sum(hw.dispatch_us for _ in layers)
    by_bound: dict[str, float] = {}
    for x in layers:
        by_bound[x.bound] = by_bound.get(x.bound, 0.0) + x.predicted_us
    return {"hardware": hw.name, "nodes": len(layers), "gops": tot_ops / 1e9, "mbytes": tot_bytes / 1e6,
            "predicted_ms": pred / 1e3, "dispatch_ms": disp / 1e3,
            "time_share": {k: v / pred for k, v in sorted(by_bound.items())} if pred else {},
            "int8_ops_share": (sum(x.ops for x in layers if x.precision == "int8") / tot_ops) if tot_ops else 0.0}
