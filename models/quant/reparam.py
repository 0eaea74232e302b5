"""RepQuant-style reparameterisation: per-channel activation ranges folded into the weights.

RepQuant (arXiv 2402.05628, via RepQ-ViT's code) calibrates per-channel activation
quantizers, then folds each channel's scale ratio ``r_c = s_c / mean(s)`` into the layer
before (LayerNorm γ, β divided by ``r_c``) and the layer after (next linear's input column
multiplied by ``r_c``), so that one layer-wise quantizer fits every channel. The function
computed is unchanged. Our graphs have no LayerNorm; the same algebra holds for:

* **Conv → [ReLU | MaxPool]* → Conv(s)** (:func:`equalize`): output channel ``c`` of the
  first conv (weights and bias) is divided by ``r_c > 0``; ReLU and max-pooling commute with
  a positive per-channel scale; every consumer conv's input channel ``c`` is multiplied by
  ``r_c``. Exact. Only the scale is folded, not RepQuant's zero-point shift: zero padding
  of the next conv would see the shift at the borders. A tensor used by anything other
  than convolutions (an addition, a graph output) is left alone.
* **Conv(+folded BN) → LIF** (:func:`absorb_lif_scales`, SLTNet): dividing the LIF input
  of channel ``c`` by ``r_c`` divides its membrane by ``r_c`` at every step (the leak is
  linear, the hard reset multiplies by 0 or 1), so dividing the firing threshold by ``r_c``
  too leaves every spike unchanged: the per-channel scales become per-channel thresholds.

``alpha`` (0..1) moves only part of the range spread (``r_c = (range_c / mean)^alpha``,
SmoothQuant's migration strength): the consumer's weights absorb what the activations lose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

PASS_THROUGH = ("Relu", "MaxPool")


@dataclass
class Fold:
    producer: str      # conv node whose output channels were divided
    tensor: str        # the activation tensor whose channel ranges were equalised
    consumers: list[str]
    spread_before: float  # max/min of the per-channel ranges
    spread_after: float


def _maps(proto: onnx.ModelProto):
    producer = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {i.name: i for i in proto.graph.initializer}
    return producer, consumers, inits


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def candidates(proto: onnx.ModelProto) -> list[tuple[onnx.NodeProto, str, list[onnx.NodeProto]]]:
    """(conv, equalised tensor, consumer convs) triples where folding is exact."""
    producer, consumers, inits = _maps(proto)
    outputs = {o.name for o in proto.graph.output}
    found = []
    for n in proto.graph.node:
        if n.op_type != "Conv" or n.input[1] not in inits or (len(n.input) > 2 and n.input[2] not in inits):
            continue
        chain, t = [], n.output[0]
        ok = True
        while True:  # follow single-consumer pass-through ops
            cs = consumers.get(t, [])
            if t in outputs or not cs:
                ok = False
                break
            if len(cs) == 1 and cs[0].op_type in PASS_THROUGH:
                chain.append(cs[0])
                t = cs[0].output[0]
                continue
            break
        if not ok:
            continue
        cs = consumers.get(t, [])
        if t in outputs or not cs or any(c.op_type != "Conv" or c.input[0] != t or c.input[1] not in inits for c in cs):
            continue
        # every intermediate tensor of the chain must have exactly one consumer (checked above)
        found.append((n, t, cs))
    return found


def channel_ranges(proto: onnx.ModelProto, feeds: list[dict], tensors: list[str], threads: int = 2) -> dict[str, np.ndarray]:
    """Per-channel max |activation| (axis 1) of ``tensors`` over the calibration ``feeds``."""
    from foveate.models.quant.ptq import session

    p = onnx.ModelProto()
    p.CopyFrom(proto)
    have = {o.name for o in p.graph.output}
    for t in tensors:
        if t not in have:
            p.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
    sess = session(p, threads, optimize=False)
    out: dict[str, np.ndarray] = {}
    for f in feeds:
        vals = sess.run(tensors, f)
        for t, v in zip(tensors, vals):
            r = np.abs(v).max(axis=tuple(i for i in range(v.ndim) if i != 1))
            out[t] = np.maximum(out[t], r) if t in out else r
    return out


def equalize(proto: onnx.ModelProto, feeds: list[dict], alpha: float = 1.0, min_range: float = 1e-6,
             threads: int = 2) -> tuple[onnx.ModelProto, list[Fold]]:
    """A copy of ``proto`` with every exact conv→conv site equalised (see the module docstring)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha}: expected a value in [0, 1]")
    q = onnx.ModelProto()
    q.CopyFrom(proto)
    sites = candidates(q)
    if not sites:
        return q, []
    ranges = channel_ranges(q, feeds, [t for _, t, _ in sites], threads)
    inits = {i.name: i for i in q.graph.initializer}
    arrays = {k: numpy_helper.to_array(v).copy() for k, v in inits.items()}
    folds = []
    for conv, t, cs in sites:
        rng = np.maximum(ranges[t].astype(np.float64), min_range)
        live = ranges[t] > min_range  # dead channels keep their scale (r = 1)
        if live.sum() < 2:
            continue
        r = np.ones_like(rng)
        r[live] = (rng[live] / rng[live].mean()) ** alpha
        w = arrays[conv.input[1]]
        arrays[conv.input[1]] = (w / r.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        if len(conv.input) > 2:
            b = arrays[conv.input[2]]
            arrays[conv.input[2]] = (b / r).astype(b.dtype)
        for c in cs:
            wc = arrays[c.input[1]]
            g = int(_attr(c, "group", 1))
            cin_g = wc.shape[1]
            ch = np.arange(len(r))
            scale = np.ones((wc.shape[0], cin_g))
            per_group_out = wc.shape[0] // g
            for cc in ch:  # input channel cc is column cc % cin_g of the output channels of group cc // cin_g
                grp = cc // cin_g
                scale[grp * per_group_out:(grp + 1) * per_group_out, cc % cin_g] *= r[cc]
            arrays[c.input[1]] = (wc * scale.reshape(*scale.shape, *([1] * (wc.ndim - 2)))).astype(wc.dtype)
        after = rng / r
        folds.append(Fold(conv.name, t, [c.name for c in cs], float(rng[live].max() / rng[live].min()),
                          float(after[live].max() / after[live].min())))
    for k, init in inits.items():
        init.CopyFrom(numpy_helper.from_array(arrays[k], k))
    return q, folds


# ------------------------------------------------------------------------------ SNN thresholds
def lif_sites(model):
    """(name, ConvBN) of every folded conv that feeds a LIF directly (SLTNet's ConvBN with lif)."""
    from torch import nn

    from foveate.models.sltnet.blocks import ConvBN
    from foveate.models.sltnet.neuron import LIF

    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, ConvBN) and isinstance(m.lif, LIF) and isinstance(m.bn, nn.Identity)]


def lif_input_ranges(model, windows) -> dict[str, "np.ndarray"]:
    """Per-channel max |LIF input| of every :func:`lif_sites` conv over ``windows`` ([B, bins, H, W] tensors)."""
    import torch

    sites = lif_sites(model)
    ranges: dict[str, torch.Tensor] = {}
    hooks = []
    for name, m in sites:
        def hook(mod, args, out, name=name):
            r = out.detach().abs().amax(dim=tuple(i for i in range(out.ndim) if i != out.ndim - 3))
            ranges[name] = torch.maximum(ranges[name], r) if name in ranges else r
        hooks.append(m.conv.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for w in windows:
                model(w)
    finally:
        for h in hooks:
            h.remove()
    return {k: v.numpy() for k, v in ranges.items()}


def absorb_lif_scales(model, ranges: dict[str, np.ndarray], alpha: float = 1.0, min_range: float = 1e-6) -> dict[str, float]:
    """Divide each site's conv output channel ``c`` and its LIF threshold by ``r_c`` (in place).

    ``model`` must be the folded inference form (:func:`foveate.models.sltnet.export.fold_for_inference`).
    Returns the per-site range spread (max/min) before the fold; after it every live channel
    has the same range.
    """
    import torch

    spread = {}
    for name, m in lif_sites(model):
        if name not in ranges:
            continue
        rng = np.maximum(ranges[name].astype(np.float64), min_range)
        live = ranges[name] > min_range
        if live.sum() < 2:
            continue
        r = np.ones_like(rng)
        r[live] = (rng[live] / rng[live].mean()) ** alpha
        rt = torch.as_tensor(r, dtype=m.conv.weight.dtype)
        with torch.no_grad():
            m.conv.weight.div_(rt.view(-1, 1, 1, 1))
            if m.conv.bias is not None:
                m.conv.bias.div_(rt)
        th = torch.as_tensor(m.lif.threshold, dtype=m.conv.weight.dtype)
        m.lif.threshold = (th / rt).view(-1, 1, 1)
        spread[name] = float(rng[live].max() / rng[live].min())
    return spread
