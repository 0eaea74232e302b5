"""Are the fused INT8 kernels right on this CPU? Compare them with the reference Q/DQ arithmetic.

A QDQ model run with every graph optimisation disabled executes each DequantizeLinear →
float op → QuantizeLinear as written: the arithmetic the quantizer simulated. With
optimisations on (the deployed configuration), onnxruntime fuses them into integer kernels
(QLinearConv, ...). On x86 without VNNI the u8×s8 kernels can saturate their 16-bit
intermediates and go silently wrong; there the two runs disagree by far more than the
one-step requantisation rounding. :func:`kernel_agreement` measures the disagreement on
real inputs; ``foveate quantize`` runs it after every quantization and refuses to ship a
model that fails it.
"""

from __future__ import annotations

import numpy as np

from foveate.models.quant.ptq import input_name, session


def kernel_agreement(model, inputs: np.ndarray, threads: int = 2, tolerance: float = 0.05) -> dict:
    """Relative L2 difference of every output, fused INT8 kernels vs reference Q/DQ arithmetic.

    ``inputs`` is ``[N, ...]`` (batch 1 per run). ``ok`` is True when the worst relative
    difference stays under ``tolerance``.
    """
    import onnx

    from foveate.models.quant.ptq import recipe_of

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load_from_string(model)
    boundary = _boundary(proto, set((recipe_of(proto) or {}).get("float_nodes", [])))
    if boundary:  # compare where the integer part hands over to float (before top-k reorders things)
        p = onnx.ModelProto()
        p.CopyFrom(proto)
        del p.graph.output[:]
        for t in boundary:
            p.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
        proto = p
    fused, ref = session(proto, threads, optimize=True), session(proto, threads, optimize=False)
    name = input_name(proto)
    worst, maxabs = 0.0, 0.0
    for x in inputs:
        feed = {name: np.ascontiguousarray(x[None], dtype=np.float32)}
        a, b = fused.run(None, feed), ref.run(None, feed)
        for u, v in zip(a, b):
            u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
            den = np.linalg.norm(v)
            worst = max(worst, float(np.linalg.norm(u - v) / den) if den > 0 else float(np.linalg.norm(u)))
            maxabs = max(maxabs, float(np.abs(u - v).max()) if u.size else 0.0)
    return {"relative_l2_worst": worst, "max_abs": maxabs, "tolerance": tolerance, "ok": worst <= tolerance,
            "samples": int(len(inputs)), "compared": boundary or "graph outputs"}


def _boundary(proto, float_nodes: set[str]) -> list[str]:
    """Outputs of activation DequantizeLinear nodes read by nodes kept in float."""
    inits = {i.name for i in proto.graph.initializer}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return [n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits
            and any(c.name in float_nodes for c in consumers.get(n.output[0], []))]
