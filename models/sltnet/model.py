"""SLTNet (Long et al., arXiv 2412.12843): a spike-driven lightweight transformer network for
event-based semantic segmentation, re-implemented from the paper's official code.

Shapes: input voxel grid ``[B, bins, H, W]`` (repeated over ``T`` steps) or ``[T, B, bins, H, W]``;
output logits ``[B, K, H, W]`` at full input resolution, averaged over T. In training mode the
forward pass also returns the auxiliary head's logits (from the H/4 decoder stage).
"""

from __future__ import annotations

import torch
from torch import nn

from foveate.models.sltnet.blocks import (BNLIF, FE, LC, PA, SCB, STB, ConvBN, Downsample, Up, conv2d,
                                          resize_seq)
from foveate.models.sltnet.config import SLTNetConfig, get_config
from foveate.system.errors import ConfigError


class Stem(nn.Sequential):
    """The stem's three convs (a Sequential, so names and state-dict keys stay the official ones);
    returns the output and the second conv's full-resolution spikes."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self[1](self[0](x))
        return self[2](s0), s0


class SLTNet(nn.Module):
    def __init__(self, config: SLTNetConfig | str = "ddd17") -> None:
        super().__init__()
        cfg = get_config(config) if isinstance(config, str) else config
        if cfg.height % 8 or cfg.width % 8:
            raise ConfigError(f"SLTNet input {cfg.height}x{cfg.width}: height and width must be multiples of 8")
        if cfg.time_steps < 1:
            raise ConfigError(f"SLTNet time_steps must be >= 1, got {cfg.time_steps}")
        self.config = cfg
        k = cfg.num_classes
        # Encoder. Stem: two 3x3 convs at full resolution, one stride-2 conv.
        self.stem = Stem(ConvBN(cfg.bins, 32, 3, padding=1), ConvBN(32, 32, 3, padding=1),
                         ConvBN(32, 32, 3, stride=2, padding=1, bn=False, lif=False))
        self.bn_lif_0 = BNLIF(32)
        self.down1 = Downsample(32, 64)
        self.stage1 = nn.Sequential(*(SCB(64, d) for d in (2, 2, 2)))
        self.bn_lif_1 = BNLIF(64)
        self.down2 = Downsample(64, 128)
        self.stage2 = nn.Sequential(*(SCB(128, d) for d in (1, 1, 2)))
        self.bn_lif_2 = BNLIF(128)
        self.down3 = Downsample(128, 32)
        self.stage3 = nn.Sequential(*(SCB(32, d) for d in (1, 1, 2)))
        self.bn_lif_3 = BNLIF(32)
        self.stb1 = STB(32, num_heads=2)
        self.stb2 = STB(32, num_heads=2)
        # Decoder with skips from the three encoder stages.
        self.dec1 = SCB(32, 2)
        self.lc3, self.fe3 = LC(32, 32), FE(32)
        self.up1 = Up(32, 16)
        self.bn_lif_5 = BNLIF(16)
        self.dec2 = SCB(16, 2)
        self.lc2, self.fe2 = LC(128, 16), FE(16)
        self.up2 = Up(16, 16)
        self.bn_lif_6 = BNLIF(16)
        self.dec3 = SCB(16, 2)
        self.lc1, self.fe1 = LC(64, 16), FE(16)
        self.up3 = Up(16, 16)
        self.pa = PA(16)
        self.bn_lif_7 = BNLIF(16)
        self.classifier = conv2d(16, k, 1)  # shared by the main and auxiliary heads
        if cfg.full_res_skip:  # not in the paper: the stem's full-resolution spikes reach the last LIF
            self.skip0 = ConvBN(32, 16, 1, lif=False)
        self.apply(_init)

    def forward(self, x: torch.Tensor, with_aux: bool | None = None):
        if x.dim() == 4:
            x = x.unsqueeze(0).expand(self.config.time_steps, *x.shape)
        elif x.dim() != 5:
            raise ValueError(f"SLTNet expects [B, C, H, W] or [T, B, C, H, W], got shape {tuple(x.shape)}")
        full = tuple(x.shape[-2:])
        y0, s0 = self.stem(x)
        o0 = self.bn_lif_0(y0)
        o1 = self.bn_lif_1(self.stage1(self.down1(o0)))
        o2 = self.bn_lif_2(self.stage2(self.down2(o1)))
        o3 = self.bn_lif_3(self.stage3(self.down3(o2)))
        y = self.stb2(self.stb1(o3))

        y = self.bn_lif_5(self.up1(self.dec1(y) + self.fe3(self.lc3(o3))))
        skip = self.fe2(self.lc2(o2))
        y = resize_seq(self.dec2(y), tuple(skip.shape[-2:]))
        y = self.bn_lif_6(self.up2(y + skip))
        aux = self.classifier(resize_seq(y, full)).mean(0) if (self.training if with_aux is None else with_aux) else None
        y = self.pa(self.up3(self.dec3(y) + self.fe1(self.lc1(o1))))
        y = resize_seq(y, full)
        if self.config.full_res_skip:
            y = y + self.skip0(s0)
        out = self.classifier(self.bn_lif_7(y)).mean(0)
        return out if aux is None else (out, aux)


def _init(m: nn.Module) -> None:
    """Official init: truncated normal (std 0.02) for 2-D convs, BN weight 1 / bias 0;
    transposed convs, Conv1d (ECA) and the MLP's Conv1d-equivalent layers keep PyTorch's default."""
    if isinstance(m, nn.Conv2d) and not getattr(m, "default_init", False):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
