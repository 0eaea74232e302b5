"""Lean ONNX graphs for SLTNet at T = 1: no time axis, no shape arithmetic, no reshape chains.

The traced export works on multi-step tensors ``[T, B, C, H, W]``: every spikingjelly layer
flattens ``T·B`` around its stateless op and unflattens after, and the shapes come from
``Shape → Gather → Concat`` arithmetic. At T = 1 that is ~7000 nodes for ~400 that compute.
onnxruntime folds the shape arithmetic at session start, but ~390 Reshape nodes, the
``mean`` over the size-1 time axis and the layout changes they force stay in the running
graph, each with its dispatch cost (docs/deployment.md, "SLTNet speed-up").

:func:`lean_graph` rewrites a statically shaped export, exactly (no arithmetic changes):

1. :func:`fold_constants`: onnxruntime's basic, hardware-independent optimisations (constant
   folding, shape arithmetic, identity removal), saved as a standard ONNX model.
2. :func:`drop_time_axis`: every 5-D tensor with a leading 1 (the T axis) is stored without
   it. Element-wise ops, reductions and concatenations run on the 4-D tensors (axes shifted);
   the reshapes that only added or removed the time axis disappear. Any other op gets its
   inputs back in their original shape, so the pass is correct for any graph.
3. :func:`collapse_reshapes`: chains of Reshape/Squeeze/Unsqueeze (also through unary
   element-wise ops) become one Reshape; a Reshape to its input's own shape is dropped.

The result has the same inputs and outputs (names, shapes) as the export. The FP32 parity
tests (``tests/models/sltnet/test_sltnet_export.py``) run on it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal", "Cast",
               "Sigmoid", "Relu", "Neg", "Abs", "Not", "And", "Or", "Where", "Sqrt", "Pow", "Tanh", "Exp", "Clip",
               "Min", "Max", "Identity"}
UNARY = {"Cast", "Sigmoid", "Relu", "Neg", "Abs", "Not", "Sqrt", "Tanh", "Exp", "Identity"}
REDUCE = {"ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd"}
SHAPE_OPS = {"Reshape", "Squeeze", "Unsqueeze", "Flatten"}


def lean_graph(proto: onnx.ModelProto) -> onnx.ModelProto:
    """:func:`fold_constants`, :func:`drop_time_axis`, :func:`collapse_reshapes` (see the module docstring)."""
    return fold_constants(collapse_reshapes(drop_time_axis(fold_constants(proto))))


def fold_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxruntime's basic graph optimisations, saved as a standard ONNX model (metadata kept)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "basic.onnx"
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
        folded = onnx.load(str(out))
    del folded.metadata_props[:]
    folded.metadata_props.extend(proto.metadata_props)
    return folded


def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    inferred = onnx.shape_inference.infer_shapes(proto)
    g = inferred.graph
    out: dict[str, tuple[int, ...]] = {}
    for v in list(g.input) + list(g.value_info) + list(g.output):
        dims = v.type.tensor_type.shape.dim
        if v.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            out[v.name] = tuple(d.dim_value for d in dims)
    for i in g.initializer:
        out[i.name] = tuple(i.dims)
    return out


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class _Lowering:
    """State of :func:`drop_time_axis`: where each original tensor lives, and in which shape."""

    def __init__(self, proto: onnx.ModelProto) -> None:
        self.g = proto.graph
        self.shape = _shapes(proto)
        self.inits = {i.name: i for i in self.g.initializer}
        self.outputs = {o.name for o in self.g.output}
        self.state: dict[str, tuple[str, bool]] = {}  # original name -> (current name, lowered?)
        self.nodes: list[onnx.NodeProto] = []
        self.new_inits: list[onnx.TensorProto] = []
        self._cache: dict[tuple[str, str], str] = {}
        self._n = 0

    def fresh(self, base: str) -> str:
        self._n += 1
        return f"{base}__t1_{self._n}"

    def const(self, values, base: str) -> str:
        name = self.fresh(base)
        self.new_inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def is_t(self, name: str) -> bool:
        s = self.shape.get(name)
        return s is not None and len(s) == 5 and s[0] == 1

    def where(self, name: str) -> tuple[str, bool]:
        return self.state.get(name, (name, False))

    def plain(self, name: str) -> str:
        """The tensor in its original shape (re-adds the time axis if it was dropped)."""
        cur, low = self.where(name)
        if not low:
            return cur
        key = (name, "plain")
        if key not in self._cache:
            out = self.fresh(name)
            self.nodes.append(helper.make_node("Reshape", [cur, self.const(self.shape[name], name)], [out],
                                               name=out))
            self._cache[key] = out
        return self._cache[key]

    def lowered(self, name: str) -> str:
        """The tensor without its leading time axis."""
        cur, low = self.where(name)
        if low:
            return cur
        key = (name, "low")
        if key not in self._cache:
            out = self.fresh(name)
            if name in self.inits:
                arr = numpy_helper.to_array(self.inits[name])
                self.new_inits.append(numpy_helper.from_array(arr.reshape(arr.shape[1:]), out))
            else:
                self.nodes.append(helper.make_node("Reshape", [cur, self.const(self.shape[name][1:], name)], [out],
                                                   name=out))
            self._cache[key] = out
        return self._cache[key]

    def out_name(self, name: str, lowered: bool) -> str:
        return self.fresh(name) if lowered and name in self.outputs else name

    def emit(self, node: onnx.NodeProto, inputs: list[str], lowered: bool, **attrs) -> None:
        outs = [self.out_name(o, lowered) for o in node.output]
        new = helper.make_node(node.op_type, inputs, outs, name=node.name, domain=node.domain or None)
        kept = [a for a in node.attribute if a.name not in attrs]
        new.attribute.extend(kept)
        for k, v in attrs.items():
            if v is not None:
                new.attribute.append(helper.make_attribute(k, v))
        self.nodes.append(new)
        for o, n in zip(node.output, outs):
            self.state[o] = (n, lowered)

    def fallback(self, node: onnx.NodeProto) -> None:
        self.emit(node, [self.plain(i) if i else i for i in node.input], False)

    # ------------------------------------------------------------------ rules
    def shape_op(self, node) -> None:
        x, out = node.input[0], node.output[0]
        if out not in self.shape or x not in self.shape:
            return self.fallback(node)
        target = self.shape[out]
        low = self.is_t(out)
        stored = target[1:] if low else target
        cur, cur_low = self.where(x)
        cur_shape = self.shape[x][1:] if cur_low else self.shape[x]
        if tuple(cur_shape) == tuple(stored) and not (out in self.outputs):
            self.state[out] = (cur, low)
            return
        name = self.out_name(out, low)
        self.nodes.append(helper.make_node("Reshape", [cur, self.const(stored, out)], [name], name=node.name))
        self.state[out] = (name, low)

    def elementwise(self, node) -> None:
        out = node.output[0]
        if not any(self.where(i)[1] for i in node.input if i) or not self.is_t(out):
            return self.fallback(node)
        if any(i and (i not in self.shape or len(self.shape[i]) == 5 and self.shape[i][0] != 1) for i in node.input):
            return self.fallback(node)
        ins = [(self.lowered(i) if len(self.shape[i]) == 5 else self.where(i)[0]) if i else i for i in node.input]
        self.emit(node, ins, True)

    def reduce(self, node) -> None:
        x, out = node.input[0], node.output[0]
        if not self.where(x)[1]:
            return self.fallback(node)
        axes_in_attr = node.op_type != "ReduceSum"
        if axes_in_attr:
            axes = _attr(node, "axes")
        else:
            axes = numpy_helper.to_array(self.inits[node.input[1]]).tolist() if len(node.input) > 1 and \
                node.input[1] in self.inits else None
        if axes is None or (not axes_in_attr and len(node.input) > 1 and node.input[1] not in self.inits):
            return self.fallback(node)
        axes = sorted(a % 5 for a in axes)
        keep = _attr(node, "keepdims", 1)
        rest = [a - 1 for a in axes if a != 0]
        if not keep and 0 not in axes:
            return self.fallback(node)
        out_low = bool(keep)
        if not rest:  # only the size-1 time axis: the stored input is the result
            if out in self.outputs:
                name = self.out_name(out, out_low) if out_low else out
                self.nodes.append(helper.make_node("Identity", [self.where(x)[0]], [name], name=node.name))
                self.state[out] = (name, out_low)
            else:
                self.state[out] = (self.where(x)[0], out_low)
            return
        cur = self.where(x)[0]
        if axes_in_attr:
            self.emit(node, [cur], out_low, axes=rest)
        else:
            self.emit(node, [cur, self.const(rest, out)] + list(node.input[2:]), out_low)

    def concat(self, node) -> None:
        out = node.output[0]
        axis = _attr(node, "axis") % 5 if self.is_t(out) else None
        if axis in (None, 0) or not any(self.where(i)[1] for i in node.input):
            return self.fallback(node)
        self.emit(node, [self.lowered(i) for i in node.input], True, axis=axis - 1)

    def run(self) -> onnx.ModelProto:
        for node in self.g.node:
            if node.op_type in SHAPE_OPS and node.op_type != "Flatten":
                self.shape_op(node)
            elif node.op_type in ELEMENTWISE:
                self.elementwise(node)
            elif node.op_type in REDUCE:
                self.reduce(node)
            elif node.op_type == "Concat":
                self.concat(node)
            else:
                self.fallback(node)
        producer = {o: n for n in self.nodes for o in n.output}
        for o in self.g.output:
            cur, low = self.where(o.name)
            if cur == o.name and not low:
                continue
            src = self.plain(o.name) if low else cur
            readers = [n for n in self.nodes if src in n.input]
            if src in producer and not readers and src not in {x.name for x in self.g.output}:
                node = producer[src]  # the output's own producer: just rename its output
                node.output[list(node.output).index(src)] = o.name
            else:
                self.nodes.append(helper.make_node("Identity", [src], [o.name], name=f"{o.name}__out"))
        g = helper.make_graph(self.nodes, self.g.name, list(self.g.input), list(self.g.output),
                              list(self.g.initializer) + self.new_inits)
        return g


def drop_time_axis(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Store every ``[1, B, ...]`` 5-D tensor without its time axis (exact; see the module docstring)."""
    graph = _Lowering(proto).run()
    out = helper.make_model(graph, opset_imports=list(proto.opset_import), producer_name=proto.producer_name)
    out.ir_version = proto.ir_version
    out.metadata_props.extend(proto.metadata_props)
    return _prune(out)


def _consumers(graph) -> dict[str, list]:
    cons: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            cons.setdefault(i, []).append(n)
    return cons


def collapse_reshapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Merge Reshape/Squeeze/Unsqueeze chains (also across unary element-wise ops) and drop no-op reshapes."""
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    g = p.graph
    outputs = {o.name for o in g.output}
    changed = True
    while changed:  # each pass applies every rewrite whose tensors no earlier rewrite of the pass touched
        changed = False
        shape = _shapes(p)
        cons = _consumers(g)
        producer = {o: n for n in g.node for o in n.output}
        dirty: set[str] = set()
        for n in list(g.node):
            if n.op_type not in SHAPE_OPS or n.op_type == "Flatten" or n.output[0] not in shape:
                continue
            x = n.input[0]
            if x in dirty or n.output[0] in dirty:
                continue
            # a reshape to the input's own shape
            if x in shape and shape[x] == shape[n.output[0]] and n.output[0] not in outputs:
                for c in cons.get(n.output[0], []):
                    for k, i in enumerate(c.input):
                        if i == n.output[0]:
                            c.input[k] = x
                g.node.remove(n)
                dirty.update((x, n.output[0]))
                changed = True
                continue
            prev = producer.get(x)
            if prev is None or x in outputs or len(cons.get(x, [])) != 1 or prev.input[0] in dirty:
                continue
            if prev.op_type in SHAPE_OPS and prev.op_type != "Flatten":  # reshape of a reshape
                _retarget(p, n, prev.input[0], shape[n.output[0]])
                g.node.remove(prev)
                dirty.update((x, n.output[0], prev.input[0]))
                changed = True
                continue
            if prev.op_type in UNARY:  # unary op between two reshapes: reshape first, then the op
                before = producer.get(prev.input[0])
                if before is not None and before.op_type in SHAPE_OPS and before.op_type != "Flatten" and \
                        len(cons.get(prev.input[0], [])) == 1 and prev.input[0] not in outputs and \
                        before.input[0] not in dirty:
                    dirty.update((prev.input[0], before.input[0], x, n.output[0]))
                    prev.input[0] = before.input[0]
                    g.node.remove(before)
                    _retarget(p, n, x, shape[n.output[0]])
                    changed = True
    del g.value_info[:]
    return tidy(p)


def _retarget(p: onnx.ModelProto, node, data: str, target: tuple[int, ...]) -> None:
    name = f"{node.output[0]}__shape"
    p.graph.initializer.append(numpy_helper.from_array(np.asarray(target, np.int64), name))
    new = helper.make_node("Reshape", [data, name], list(node.output), name=node.name)
    idx = list(p.graph.node).index(node)
    p.graph.node.remove(node)
    p.graph.node.insert(idx, new)


def tidy(p: onnx.ModelProto) -> onnx.ModelProto:
    """Topological order (rewrites may move a producer after its consumer), then nodes and initializers
    nobody reads dropped (in place; returns ``p``)."""
    g = p.graph
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    pending, ordered = list(g.node), []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input at node {rest[0].name}")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)
    return _prune(p)


def _prune(p: onnx.ModelProto) -> onnx.ModelProto:
    """Drop nodes whose outputs nobody reads, then initializers nobody reads."""
    g = p.graph
    needed = {o.name for o in g.output}
    keep = []
    for n in reversed(list(g.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    del g.node[:]
    g.node.extend(reversed(keep))
    inits = [i for i in g.initializer if i.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    return p
