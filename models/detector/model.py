"""A small anchor-free (CenterNet-style) detector that predicts a Gaussian for every box.

Graph (chosen so onnxruntime static QDQ INT8 quantizes it whole): plain 3x3/1x1
convolutions with BatchNorm and ReLU, nearest-neighbour upsampling and additions; no
depthwise convolutions, no attention, no exotic activations. Decoding (sigmoid, peak
picking, top-k, exponentials) lives in a separate :class:`Decode` module at the end of the
graph, so its ONNX nodes are named ``/decode/...`` and a quantizer can keep them in float.

Backbone: five stride-2 stages (strides 2..32), each a stride-2 conv plus a 3x3 conv
(except the stem). Neck: a top-down path (1x1 laterals, upsample, add) back to stride 8.
Head on the stride-8 grid:

- ``heat``: per class, the logit that a box centre lies in the cell;
- ``reg`` (8 channels): mean and log-variance of the centre offset (dx, dy, in cells,
  from the cell centre) and of the log size (log w, log h, in cells), the Gaussian-YOLO
  idea (Choi et al., ICCV 2019) on a CenterNet head. Variances are per box and depend on
  the image; they are learned with a Gaussian negative log-likelihood.
"""

from __future__ import annotations

import torch
from torch import nn

from foveate.models.detector.config import DET_COLUMNS, NORM_STD_FLOOR, DetectorConfig

LOGVAR_MIN, LOGVAR_MAX = -12.0, 6.0
REG_CHANNELS = 8  # dx, dy, log w, log h, then their log-variances


def conv_bn_relu(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class InputNorm(nn.Module):
    """Per-view standardization, ``(x - mean) / max(std, floor)`` over each image.

    In the graph (nodes ``.../input_norm/...``, kept in float by the quantizer) so every
    runtime and the quantization calibration feed the same [0, 1] grey levels.
    """

    def __init__(self, floor: float = NORM_STD_FLOOR) -> None:
        super().__init__()
        self.floor = float(floor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / torch.sqrt(var).clamp_min(self.floor)


class Backbone(nn.Module):
    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.stem = conv_bn_relu(1, c1, 3, 2)
        self.s4 = nn.Sequential(conv_bn_relu(c1, c2, 3, 2), conv_bn_relu(c2, c2))
        self.s8 = nn.Sequential(conv_bn_relu(c2, c3, 3, 2), conv_bn_relu(c3, c3))
        self.s16 = nn.Sequential(conv_bn_relu(c3, c4, 3, 2), conv_bn_relu(c4, c4))
        self.s32 = nn.Sequential(conv_bn_relu(c4, c5, 3, 2), conv_bn_relu(c5, c5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x8 = self.s8(self.s4(self.stem(x)))
        x16 = self.s16(x8)
        return x8, x16, self.s32(x16)


class Neck(nn.Module):
    """Top-down feature pyramid collapsed onto the stride-8 grid."""

    def __init__(self, widths: tuple[int, ...], out: int) -> None:
        super().__init__()
        self.l8 = conv_bn_relu(widths[2], out, 1)
        self.l16 = conv_bn_relu(widths[3], out, 1)
        self.l32 = conv_bn_relu(widths[4], out, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.smooth = conv_bn_relu(out, out)

    def forward(self, x8: torch.Tensor, x16: torch.Tensor, x32: torch.Tensor) -> torch.Tensor:
        p16 = self.l16(x16) + self.up(self.l32(x32))
        return self.smooth(self.l8(x8) + self.up(p16))


class DetectorNet(nn.Module):
    """Raw maps: ``heat`` logits ``(B, C, H/8, W/8)`` and ``reg`` ``(B, 8, H/8, W/8)``.

    Input: ``(B, 1, H, W)`` float32 grey levels scaled to [0, 1]; the network
    standardizes each view itself when ``config.input_norm`` says so.
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.config = config
        self.input_norm = InputNorm() if config.input_norm == "standardize" else nn.Identity()
        self.backbone = Backbone(config.widths)
        self.neck = Neck(config.widths, config.neck)
        self.heat_head = nn.Sequential(conv_bn_relu(config.neck, config.head), nn.Conv2d(config.head, len(config.classes), 1))
        self.reg_head = nn.Sequential(conv_bn_relu(config.neck, config.head), nn.Dropout2d(config.dropout),
                                      nn.Conv2d(config.head, REG_CHANNELS, 1))
        nn.init.constant_(self.heat_head[-1].bias, -2.19)  # prior 0.1 (CenterNet)
        nn.init.normal_(self.reg_head[-1].weight, std=1e-3)
        nn.init.zeros_(self.reg_head[-1].bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The stride-8 map both heads read, ``(B, neck, H/8, W/8)``."""
        return self.neck(*self.backbone(self.input_norm(x)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.heat_head(f), self.reg_head(f)


class HeatmapEnsemble(nn.Module):
    """Several detectors as one: the mean of their heatmap probabilities (with ``mirror``, each
    also run on the mirrored view and its map mirrored back) and the first one's regression.

    What ``--teacher A --teacher B --teacher-mirror`` distils, in a form the evaluation runs, so a
    teacher can be measured before it teaches. Any widths; same classes and grid.
    """

    def __init__(self, nets: list[DetectorNet], mirror: bool = False) -> None:
        super().__init__()
        if not nets:
            raise ValueError("HeatmapEnsemble needs at least one network")
        self.nets = nn.ModuleList(nets)
        self.mirror = bool(mirror)
        self.config = nets[0].config

    def heat_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Mean heatmap probability ``(B, C, H/8, W/8)``."""
        maps = [torch.sigmoid(n(x)[0]) for n in self.nets]
        if self.mirror:
            xm = torch.flip(x, [3])
            maps += [torch.sigmoid(n(xm)[0]).flip(3) for n in self.nets]
        return torch.stack(maps).mean(0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.logit(self.heat_prob(x), eps=1e-6), self.nets[0](x)[1]


class Decode(nn.Module):
    """Raw maps to the top-``k`` peaks as boxes with variances, in input pixels.

    Output ``(B, k, 10)`` with columns :data:`DET_COLUMNS`: score, class index, centre
    (cx, cy), size (w, h), then the variances of cx, cy, w, h (px^2). The image spans
    ``[0, W] x [0, H]``; pixel ``(u, v)`` covers ``[u, u+1) x [v, v+1)``. A peak is a
    cell whose score is the maximum of its 3x3 neighbourhood (CenterNet's NMS).
    Size variances come from the log-size variances by the delta method
    (var w = w^2 var log w).
    """

    def __init__(self, config: DetectorConfig) -> None:
        super().__init__()
        self.stride = float(config.stride)
        # Static sizes (from the config, not the tensors) keep the traced graph free of shape arithmetic.
        self.n_classes = len(config.classes)
        self.grid = config.grid
        self.k = min(int(config.max_detections), self.n_classes * self.grid[0] * self.grid[1])
        self.centre_var_scale = float(config.centre_var_scale)
        self.size_var_scale = float(config.size_var_scale)
        self.pool = nn.MaxPool2d(3, 1, 1)

    def forward(self, heat_logits: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        heat = torch.sigmoid(heat_logits)
        peaks = heat * (self.pool(heat) == heat).to(heat.dtype)
        scores, idx = torch.topk(peaks.flatten(1), self.k)
        cls = torch.div(idx, h * w, rounding_mode="floor")
        pos = idx - cls * (h * w)
        gy = torch.div(pos, w, rounding_mode="floor")
        gx = pos - gy * w
        r = torch.gather(reg.flatten(2), 2, pos.unsqueeze(1).expand(-1, REG_CHANNELS, -1))
        lv = r[:, 4:8].clamp(LOGVAR_MIN, LOGVAR_MAX)
        s = self.stride
        cx = (gx.to(r.dtype) + 0.5 + r[:, 0]) * s
        cy = (gy.to(r.dtype) + 0.5 + r[:, 1]) * s
        bw = torch.exp(r[:, 2].clamp(-6.0, 8.0)) * s
        bh = torch.exp(r[:, 3].clamp(-6.0, 8.0)) * s
        cvar = torch.exp(lv[:, 0:2]) * (s * s * self.centre_var_scale)
        var_w = bw * bw * torch.exp(lv[:, 2]) * self.size_var_scale
        var_h = bh * bh * torch.exp(lv[:, 3]) * self.size_var_scale
        cols = [scores, cls.to(r.dtype), cx, cy, bw, bh, cvar[:, 0], cvar[:, 1], var_w, var_h]
        return torch.stack(cols, 2)


class DetectorWithDecode(nn.Module):
    """Network plus decoding: ``(B, 1, H, W)`` -> ``(B, k, 10)``; what the ONNX file holds."""

    def __init__(self, net: DetectorNet) -> None:
        super().__init__()
        self.net = net
        self.decode = Decode(net.config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.net(x))
