"""Static post-training quantization with onnxruntime: QDQ, per-channel symmetric weights.

:class:`QuantRecipe` is everything that decides the quantized model (it is stored in the
output's ONNX metadata under ``foveate_quant`` next to the calibration set's description, so a
shipped file says how it was made). :func:`quantize_model` runs onnxruntime's
``quant_pre_process`` (shape inference, Conv+BN fusion) and ``quantize_static``.

Defaults follow the onnxruntime guidance for CPUs: QDQ format, asymmetric u8 activations,
symmetric per-channel s8 weights. ``reduce_range="auto"`` uses 7-bit weights only on x86
without VNNI (:mod:`foveate.models.quant.cpu`); ``u8u8=True`` (unsigned weights, no
saturating u8×s8 pairs) is the other fix there, at full 8-bit weight resolution. Nodes that must stay in float are kept out:
every node named ``/decode/...`` (the detector's decoding, sigmoid included) or
``.../input_norm/...`` (its per-view input standardization), any
Sigmoid/Softmax producing a graph output, plus ``exclude`` by name.

``weight_bits=4`` gives W4A8: 4-bit symmetric per-channel weights (``com.microsoft`` 4-bit
Q/DQ below opset 21), 8-bit activations; onnxruntime runs those convolutions as
dequantize + float conv, so W4A8 is a size and accuracy option here, not a speed one. The
convolution that reads the model input keeps 8-bit weights (``input_conv_bits``), as is usual in
4-bit work (LSQ, PACT): its few weights per output channel see the raw input, and on the
detector the 4-bit stem alone costs about 1.6 of the 2.4 mAP points W4A8 loses.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx

from foveate.system.errors import ConfigError

log = logging.getLogger(__name__)

METADATA_KEY = "foveate_quant"
CALIB_METHODS = ("minmax", "percentile", "entropy")
INPUT_NORM_PREFIXES = ("/net/input_norm/", "/input_norm/")  # the detector's per-view input standardization
FLOAT_PREFIXES = ("/decode/", *INPUT_NORM_PREFIXES)  # node-name prefixes that always stay in float


@dataclass(frozen=True)
class QuantRecipe:
    method: str = "percentile"          # minmax | percentile | entropy
    percentile: float = 99.999          # for method=percentile
    weight_bits: int = 8                # 8 (W8A8) or 4 (W4A8)
    per_channel: bool = True
    reduce_range: str | bool = "auto"   # auto: 7-bit weights only on x86 without VNNI
    activation_symmetric: bool = False  # u8 asymmetric activations (CPU guidance)
    u8u8: bool = False                  # unsigned 8-bit weights too: the other fix for non-VNNI x86
    op_types: tuple[str, ...] | None = None  # None: every op onnxruntime can quantize
    exclude: tuple[str, ...] = ()       # node names kept in float, beside the automatic ones
    keep_head_float: bool = True        # the convs that produce graph outputs or feed float nodes stay float
    preprocess: bool = True             # onnxruntime quant_pre_process first
    fuse_spikes: bool = True            # LIF thresholds folded into the conv requantisation (quant/spikes.py)
    min_conv_macs: int = 0              # convs with fewer MACs stay float (gates on pooled vectors)
    input_conv_bits: int = 8            # W4A8: weight bits of the conv(s) reading the model input (4 or 8)

    def __post_init__(self) -> None:
        if self.method not in CALIB_METHODS:
            raise ConfigError(f"calibration method '{self.method}': expected one of {', '.join(CALIB_METHODS)}")
        if self.weight_bits not in (4, 8):
            raise ConfigError(f"weight_bits {self.weight_bits}: expected 8 (W8A8) or 4 (W4A8)")
        if not 90.0 <= self.percentile <= 100.0:
            raise ConfigError(f"percentile {self.percentile}: expected a value in [90, 100]")
        if self.reduce_range not in ("auto", True, False):
            raise ConfigError(f"reduce_range {self.reduce_range!r}: expected auto, true or false")
        if self.u8u8 and self.weight_bits != 8:
            raise ConfigError("u8u8 applies to 8-bit weights only")
        if self.input_conv_bits not in (4, 8):
            raise ConfigError(f"input_conv_bits {self.input_conv_bits}: expected 4 or 8")
        if self.input_conv_bits < self.weight_bits:
            raise ConfigError(f"input_conv_bits {self.input_conv_bits} below weight_bits {self.weight_bits}")

    def resolved_reduce_range(self) -> bool:
        if self.reduce_range == "auto":
            from foveate.models.quant.cpu import detect

            return detect().needs_reduce_range and self.weight_bits == 8 and not self.u8u8
        return bool(self.reduce_range)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["op_types"] = list(self.op_types) if self.op_types else None
        d["exclude"] = list(self.exclude)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "<recipe>") -> "QuantRecipe":
        known = set(cls.__dataclass_fields__)
        bad = set(d) - known
        if bad:
            raise ConfigError(f"{source}: unknown quantization recipe key '{sorted(bad)[0]}' "
                              f"(expected one of: {', '.join(sorted(known))})")
        d = dict(d)
        for k in ("op_types", "exclude"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


class _Reader:
    """onnxruntime CalibrationDataReader over a list of feed dicts."""

    def __init__(self, feeds: Sequence[dict]) -> None:
        self._feeds = list(feeds)
        self._it = iter(self._feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._feeds)


def float_nodes(proto: onnx.ModelProto, extra: Iterable[str] = (), heads: bool = False,
                min_conv_macs: int = 0) -> list[str]:
    """Names of nodes that must stay in float: decoding, final sigmoid/softmax, ``extra``;
    with ``heads`` also the convolutions whose output is a graph output or feeds one of those
    (the last 1x1 convs of the heads: cheap, and their logits are the most range-sensitive);
    with ``min_conv_macs`` the convolutions with fewer multiply-accumulates (their Q/DQ
    nodes cost more than the integer kernel saves)."""
    outputs = {o.name for o in proto.graph.output}
    names = {n.name for n in proto.graph.node if n.name.startswith(FLOAT_PREFIXES)}
    names |= {n.name for n in proto.graph.node if n.op_type in ("Sigmoid", "Softmax", "LogSoftmax")
              and set(n.output) & outputs}
    known = {n.name for n in proto.graph.node}
    for name in extra:
        if name not in known:
            raise ConfigError(f"exclude: no node named '{name}' in the model")
        names.add(name)
    if min_conv_macs > 0:
        names |= {n for n, macs in conv_macs(proto).items() if macs < min_conv_macs}
    if heads:
        consumers: dict[str, list] = {}
        for n in proto.graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        for n in proto.graph.node:
            if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm") and (
                    n.output[0] in outputs or any(c.name in names for c in consumers.get(n.output[0], []))):
                names.add(n.name)
    return sorted(names)


def input_convs(proto: onnx.ModelProto, exclude: Iterable[str] = ()) -> dict[str, int]:
    """Weight initialiser name -> output channels of every Conv that reads the model's input
    (directly, or through the float input-standardization nodes)."""
    inputs = {i.name for i in proto.graph.input}
    for n in proto.graph.node:  # nodes are stored in topological order
        if n.name.startswith(INPUT_NORM_PREFIXES) and any(i in inputs for i in n.input):
            inputs.update(n.output)
    inits = {i.name: list(i.dims) for i in proto.graph.initializer}
    skip = set(exclude)
    return {n.input[1]: inits[n.input[1]][0] for n in proto.graph.node
            if n.op_type == "Conv" and n.name not in skip and n.input[0] in inputs and n.input[1] in inits}


def conv_macs(proto: onnx.ModelProto) -> dict[str, int]:
    """Multiply-accumulates of every Conv node whose output shape is known (batch included)."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    weights = {i.name: list(i.dims) for i in proto.graph.initializer}
    out = {}
    for n in proto.graph.node:
        if n.op_type == "Conv" and n.input[1] in weights and n.output[0] in shapes and all(shapes[n.output[0]]):
            out[n.name] = int(np.prod(shapes[n.output[0]]) * np.prod(weights[n.input[1]][1:]))
    return out


def _load(model: str | Path | bytes | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        if isinstance(model, bytes):
            return onnx.load_from_string(model)
        p = Path(model)
        if not p.is_file():
            raise ConfigError(f"{p}: model file not found")
        return onnx.load(str(p))
    except ConfigError:
        raise
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ConfigError(f"{model if not isinstance(model, bytes) else '<bytes>'}: not an ONNX model ({exc})") from None


def input_name(proto: onnx.ModelProto) -> str:
    inits = {i.name for i in proto.graph.initializer}
    names = [i.name for i in proto.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ConfigError(f"model has {len(names)} inputs ({names}); quantization expects one")
    return names[0]


def quantize_model(model: str | Path | bytes | onnx.ModelProto, calib: Sequence[np.ndarray], recipe: QuantRecipe,
                   out: str | Path | None = None, *, calib_info: dict | None = None,
                   return_unfused: bool = False):
    """Quantize ``model`` with ``calib`` (a list of input arrays, each with batch 1).

    Returns the quantized model (also written to ``out``); its metadata keeps the float model's
    entries and adds ``foveate_quant`` = {recipe, calibration, cpu, spikes}. With
    ``return_unfused`` it returns ``(model, unfused)``, ``unfused`` being the QDQ graph before
    :func:`foveate.models.quant.spikes.fuse_spikes` (same conv kernels; the fused-kernel check
    runs on it, because the spike thresholds turn float-rounding ties of the reference
    arithmetic into spike flips that a random network amplifies).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from foveate.models.quant.cpu import detect

    if len(calib) == 0:
        raise ConfigError("calibration set is empty")
    proto = _load(model)
    name = input_name(proto)
    exclude = float_nodes(proto, recipe.exclude, recipe.keep_head_float, recipe.min_conv_macs)
    reduce_range = recipe.resolved_reduce_range()
    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[recipe.method]
    extra = {"ActivationSymmetric": recipe.activation_symmetric, "WeightSymmetric": True}
    if recipe.method == "percentile":
        extra["CalibPercentile"] = recipe.percentile
    meta = [(p.key, p.value) for p in proto.metadata_props]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "float.onnx"
        onnx.save(proto, str(src))
        if recipe.preprocess:
            pre = Path(tmp) / "pre.onnx"
            try:
                quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
                src = pre
            except Exception as exc:  # noqa: BLE001 - fall back to the plain model, say so
                log.warning("quant_pre_process failed (%s); quantizing the model as exported", exc)
            # pre-processing renames nothing that we exclude by name prefix; recompute on its graph
            exclude = float_nodes(onnx.load(str(src)), recipe.exclude, recipe.keep_head_float, recipe.min_conv_macs)
        dst = Path(tmp) / "q.onnx"
        feeds = [{name: np.ascontiguousarray(x, dtype=np.float32)} for x in calib]
        if recipe.weight_bits == 4 and recipe.input_conv_bits == 8:
            # the first layer keeps 8-bit weights (standard in 4-bit work: its few weights per output see raw pixels)
            first = input_convs(onnx.load(str(src)), exclude)
            needs_rr = detect().needs_reduce_range
            extra["TensorQuantOverrides"] = {w: [{"quant_type": QuantType.QInt8, "reduce_range": needs_rr, "axis": 0}
                                                 for _ in range(n)] for w, n in first.items()}
        quantize_static(str(src), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
                        per_channel=recipe.per_channel, reduce_range=reduce_range,
                        activation_type=QuantType.QInt8 if recipe.activation_symmetric else QuantType.QUInt8,
                        weight_type=(QuantType.QInt4 if recipe.weight_bits == 4 else
                                     QuantType.QUInt8 if recipe.u8u8 else QuantType.QInt8),
                        nodes_to_exclude=exclude, calibrate_method=method, extra_options=extra)
        unfused = onnx.load(str(dst))
    spikes = None
    q = unfused
    if recipe.fuse_spikes:
        from foveate.models.quant.spikes import fuse_spikes

        q, spikes = fuse_spikes(unfused)
    info = {"recipe": recipe.as_dict(), "reduce_range": reduce_range, "float_nodes": exclude,
            "calibration": {"n": len(calib), **(calib_info or {})}, "cpu": detect().describe(), "spikes": spikes}
    for m in (q, unfused) if spikes is not None else (q,):
        del m.metadata_props[:]
        for k, v in meta:
            if k != METADATA_KEY:
                e = m.metadata_props.add()
                e.key, e.value = k, v
        e = m.metadata_props.add()
        e.key = METADATA_KEY
        e.value = json.dumps(info)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(q, str(out))
    return (q, unfused) if return_unfused else q


def recipe_of(model: str | Path | bytes | onnx.ModelProto) -> dict | None:
    """The ``foveate_quant`` metadata of a quantized model (None for a float model)."""
    meta = {p.key: p.value for p in _load(model).metadata_props}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else None


def session(model: str | Path | bytes | onnx.ModelProto, threads: int = 2, optimize: bool = True):
    """A CPU onnxruntime session; ``optimize=False`` runs Q/DQ as written (reference arithmetic)."""
    import onnxruntime as ort

    if isinstance(model, onnx.ModelProto):
        model = model.SerializeToString()
    elif isinstance(model, Path):
        model = str(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
