"""Small ONNX graphs for the quantization tests (built with torch, exported in memory)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch
from torch import nn


class TinyNet(nn.Module):
    """conv-relu-maxpool-conv (two consumers, one depthwise) + a residual add + final sigmoid."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c3 = nn.Conv2d(8, 8, 1)
        self.c4 = nn.Conv2d(8, 4, 1)
        self.head = nn.Conv2d(4, 2, 1)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.5)
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                    # uneven channel ranges: what equalisation is for
                    m.weight.mul_(torch.logspace(-1, 1, m.out_channels).view(-1, 1, 1, 1))

    def forward(self, x):
        a = torch.max_pool2d(torch.relu(self.c1(x)), 2)   # site: c1 -> {c2, dw}
        b = torch.relu(self.c2(a)) + torch.relu(self.dw(a))  # add: no fold for c2 / dw
        c = self.c4(torch.relu(self.c3(b)))              # site: c3 -> c4
        return torch.sigmoid(self.head(c))               # head stays float


def export(net: nn.Module, shape=(1, 1, 16, 16)) -> onnx.ModelProto:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(shape),), buf, dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["y"])
    return onnx.load_from_string(buf.getvalue())


def inputs(n: int, shape=(1, 16, 16), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)
