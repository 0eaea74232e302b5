"""Inference form of SLTNet: BN folding, RepConv collapse, ONNX export with a fixed T.

``fold_for_inference`` returns a copy in which every conv → BN pair is one conv with bias
and every re-parameterisable conv (+ its BN) is one 3×3 conv; the remaining batch norms sit
on real-valued residual streams (after additions), where there is no conv to fold into; in
inference mode they are per-channel affines. The folded model computes the same function
(to float rounding: tested in float64).

``export_onnx`` traces the folded model at a fixed input size and T. Spikes are plain
``u > 0.5`` comparisons there, so the graph holds only standard operators. With
``with_spikes=True`` a second output concatenates every LIF layer's spikes (flattened, in
module order) for the parity test.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from foveate.models.sltnet.blocks import ConvBN, RepConvBN
from foveate.models.sltnet.neuron import LIF

OPSET = 17
CONFIG_METADATA_KEY = "sltnet_config"  # the SLTNetConfig as JSON, in the ONNX model's metadata


def fold_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy with conv+BN pairs folded and RepConvs collapsed (the original is untouched)."""
    folded = copy.deepcopy(model).eval()
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, RepConvBN):
                setattr(parent, name, child.collapse())
    for m in folded.modules():
        if isinstance(m, ConvBN):
            m.fold_bn()
    return folded


class _WithSpikes(nn.Module):
    """Returns (logits, all LIF spikes flattened and concatenated in module order)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self._lifs = [m for m in model.modules() if isinstance(m, LIF)]

    def forward(self, x):
        spikes: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda mod, a, out: spikes.append(out.reshape(-1))) for m in self._lifs]
        try:
            logits = self.model(x)
        finally:
            for h in hooks:
                h.remove()
        return logits, torch.cat(spikes)


def with_spikes(model: nn.Module) -> nn.Module:
    """Wrap ``model`` so it also returns every LIF layer's spikes (see :func:`export_onnx`)."""
    return _WithSpikes(model)


def export_onnx(model: nn.Module, path: str | Path | None = None, *, time_steps: int | None = None,
                with_spikes: bool = False, fold: bool = True, lean: bool = True) -> bytes:
    """Export ``model`` (folded unless ``fold=False``) to ONNX for a ``[1, bins, H, W]`` input.

    ``time_steps`` overrides the model's T (the exported graph has T unrolled). ``lean`` (the
    default) rewrites the traced graph exactly: shape arithmetic folded, the size-1 time axis
    dropped at T = 1, reshape chains merged (:mod:`foveate.models.sltnet.onnx_lean`; ~650
    nodes instead of ~7000 at T = 1). Returns the serialised model and writes it to ``path``
    when given.
    """
    net = fold_for_inference(model) if fold else copy.deepcopy(model).eval()
    if time_steps is not None:
        net.config = net.config.with_(time_steps=int(time_steps))
    cfg = net.config
    wrapped = _WithSpikes(net) if with_spikes else net
    x = torch.zeros(1, cfg.bins, cfg.height, cfg.width)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter announces its deprecation
        with torch.no_grad():
            torch.onnx.export(wrapped, (x,), buf, dynamo=False, opset_version=OPSET, input_names=["voxel"],
                              output_names=["logits", "spikes"] if with_spikes else ["logits"],
                              do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    if lean:
        from foveate.models.sltnet.onnx_lean import lean_graph

        proto = lean_graph(proto)
    meta = proto.metadata_props.add()
    meta.key, meta.value = CONFIG_METADATA_KEY, json.dumps(cfg.as_dict())
    data = proto.SerializeToString()
    if path is not None:
        Path(path).write_bytes(data)
    return data
