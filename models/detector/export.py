"""ONNX export of the detector, with decoding at the end of the graph.

``export_onnx(net, path)`` writes one graph ``image (B, 1, H, W) float32 in [0, 1] ->
detections (B, k, 10)`` (columns ``DET_COLUMNS``): the convolutional network, then the
decoding (sigmoid, 3x3 max-pool peak test, top-k, gather, exponentials) whose nodes are
all named ``/decode/...``. For static INT8 (QDQ) quantization pass those nodes to
``nodes_to_exclude`` (:func:`decode_node_names`) so decoding stays in float, or export
with ``decode=False`` (outputs ``heat`` and ``reg``) and decode beside the graph with
:func:`decode_raw`, the numpy twin of the in-graph decoding.
The batch axis is dynamic; the config travels in the metadata.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx

from foveate.models.detector.config import DetectorConfig
from foveate.models.detector.runtime import ONNX_CONFIG_KEY

OPSET = 17


def export_onnx(net, path: str | Path | None = None, *, decode: bool = True) -> onnx.ModelProto:
    """Export ``net`` (a ``DetectorNet``); returns the model and writes it to ``path`` when given."""
    import torch

    from foveate.models.detector.model import DetectorWithDecode

    net = net.eval()
    cfg: DetectorConfig = net.config
    model = DetectorWithDecode(net).eval() if decode else net
    x = torch.zeros(1, 1, *cfg.input_size)
    outputs = ["detections"] if decode else ["heat", "reg"]
    axes = {"image": {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript-based exporter announces its deprecation; the dynamo one needs onnxscript,
        # which this project does not install.
        warnings.simplefilter("ignore", DeprecationWarning)
        with torch.no_grad():
            torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=OPSET, input_names=["image"],
                              output_names=outputs, dynamic_axes=axes)
    proto = onnx.load_from_string(buf.getvalue())
    meta = proto.metadata_props.add()
    meta.key, meta.value = ONNX_CONFIG_KEY, cfg.to_json()
    onnx.checker.check_model(proto)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(path))
    return proto


def decode_node_names(proto: onnx.ModelProto) -> list[str]:
    """Names of the decoding nodes (to keep in float when quantizing)."""
    return [n.name for n in proto.graph.node if n.name.startswith("/decode/")]


def decode_raw(heat_logits: np.ndarray, reg: np.ndarray, config: DetectorConfig) -> np.ndarray:
    """Numpy version of :class:`~foveate.models.detector.model.Decode` for graphs exported with ``decode=False``."""
    from foveate.models.detector.model import LOGVAR_MAX, LOGVAR_MIN, REG_CHANNELS

    b, c, h, w = heat_logits.shape
    heat = 1.0 / (1.0 + np.exp(-heat_logits.astype(np.float32)))
    pad = np.pad(heat, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    win = np.lib.stride_tricks.sliding_window_view(pad, (3, 3), axis=(2, 3)).max((-1, -2))
    peaks = (heat * (win == heat)).reshape(b, -1)
    k = min(config.max_detections, c * h * w)
    idx = np.argsort(-peaks, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(peaks, idx, 1)
    cls = idx // (h * w)
    pos = idx - cls * h * w
    gy, gx = pos // w, pos % w
    r = np.take_along_axis(reg.reshape(b, REG_CHANNELS, h * w), pos[:, None, :], 2)
    lv = np.clip(r[:, 4:8], LOGVAR_MIN, LOGVAR_MAX)
    s = float(config.stride)
    cx = (gx + 0.5 + r[:, 0]) * s
    cy = (gy + 0.5 + r[:, 1]) * s
    bw = np.exp(np.clip(r[:, 2], -6, 8)) * s
    bh = np.exp(np.clip(r[:, 3], -6, 8)) * s
    cv = np.exp(lv[:, :2]) * (s * s * config.centre_var_scale)
    vw = bw * bw * np.exp(lv[:, 2]) * config.size_var_scale
    vh = bh * bh * np.exp(lv[:, 3]) * config.size_var_scale
    return np.stack([scores, cls.astype(np.float32), cx, cy, bw, bh, cv[:, 0], cv[:, 1], vw, vh], 2).astype(np.float32)
