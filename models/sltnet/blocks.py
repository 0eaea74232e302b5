"""SLTNet building blocks on multi-step tensors ``[T, B, C, H, W]``.

Convolutions and batch norms are spikingjelly ``layer.*`` modules in multi-step mode
(``step_mode='m'``: time and batch are flattened around a stateless layer). Names follow
the paper: SCB (spike-driven convolution block), STB (spike-driven transformer block),
LC (long connection), FE (feature enhancement), PA (pixel attention). Conv + BN pairs
are explicit ``ConvBN`` modules and re-parameterisable convolutions are ``RepConvBN``,
so :mod:`foveate.models.sltnet.export` can fold them into plain convolutions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import layer
from torch import nn

from foveate.models.sltnet.neuron import LIF

BN_EPS = 1e-3  # the official BNLIF / Spike_Conv batch norms; RepConv and MLP use PyTorch's 1e-5


def conv2d(cin, cout, k, stride=1, padding=0, dilation=1, groups=1, bias=False) -> layer.Conv2d:
    return layer.Conv2d(cin, cout, k, stride=stride, padding=padding, dilation=dilation,
                        groups=groups, bias=bias, step_mode="m")


def bn2d(c: int, eps: float = BN_EPS) -> layer.BatchNorm2d:
    return layer.BatchNorm2d(c, eps=eps, step_mode="m")


def resize_seq(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of every frame of ``[T, B, C, H, W]``."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    t, b = x.shape[:2]
    y = F.interpolate(x.flatten(0, 1), size=size, mode="bilinear", align_corners=False)
    return y.reshape(t, b, *y.shape[1:])


class BNLIF(nn.Module):
    """BN (eps 1e-3) then LIF: turns a real-valued stream into spikes."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.bn = bn2d(c)
        self.lif = LIF()

    def forward(self, x):
        return self.lif(self.bn(x))


class ConvBN(nn.Module):
    """Conv (no bias) → optional BN → optional LIF; ``fold_bn`` merges the BN into the conv."""

    def __init__(self, cin, cout, k, stride=1, padding=0, dilation=1, groups=1,
                 bn: bool = True, lif: bool = True, eps: float = BN_EPS) -> None:
        super().__init__()
        self.conv = conv2d(cin, cout, k, stride, padding, dilation, groups)
        self.bn = bn2d(cout, eps) if bn else nn.Identity()
        self.lif = LIF() if lif else nn.Identity()

    def forward(self, x):
        return self.lif(self.bn(self.conv(x)))

    @torch.no_grad()
    def fold_bn(self) -> None:
        if isinstance(self.bn, nn.Identity):
            return
        scale, shift = bn_affine(self.bn)
        conv = self.conv
        new = conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.dilation, conv.groups, bias=True).to(conv.weight)
        new.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(shift)
        new.bias.copy_(bias * scale + shift)
        self.conv, self.bn = new, nn.Identity()


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of a batch norm in inference mode: ``bn(x) = scale * x + shift``."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


class Downsample(nn.Module):
    """3×3 stride-2 conv to ``cout - cin`` channels, concatenated with a 2×2 max-pool of the input
    (only the conv, to ``cout``, when ``cin >= cout``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.pool = cin < cout
        self.conv = conv2d(cin, cout - cin if self.pool else cout, 3, stride=2, padding=1)
        self.max_pool = layer.MaxPool2d(2, stride=2, step_mode="m")

    def forward(self, x):
        y = self.conv(x)
        return torch.cat([y, self.max_pool(x)], 2) if self.pool else y


class ECA(nn.Module):
    """Efficient channel attention: GAP → Conv1d(k=3) across channels → sigmoid → scale."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.pool = layer.AdaptiveAvgPool2d(1, step_mode="m")
        self.conv = layer.Conv1d(1, 1, k, padding=(k - 1) // 2, bias=False, step_mode="m")

    def forward(self, x):
        y = self.pool(x).flatten(2).unsqueeze(2)  # [T, B, 1, C]
        y = torch.sigmoid(self.conv(y)).squeeze(2)  # [T, B, C]
        return x * y[..., None, None]


class SCB(nn.Module):
    """Spike-driven convolution block (official ``Spike_LMSBModule``), dilation ``d``.

    BNLIF → 1×1 C→C/2 → 3×1 → 1×3 (= y); two depthwise factorised branches (plain and
    dilated) each with ECA; (b1 + b2 + y) → BNLIF → 1×1 C/2→C; plus the input (membrane shortcut).
    """

    def __init__(self, c: int, d: int = 1) -> None:
        super().__init__()
        h = c // 2
        self.bn_lif_in = BNLIF(c)
        self.conv1x1_in = ConvBN(c, h, 1, bn=False, lif=False)
        self.conv3x1 = ConvBN(h, h, (3, 1), padding=(1, 0))
        self.conv1x3 = ConvBN(h, h, (1, 3), padding=(0, 1))
        self.dconv3x1 = ConvBN(h, h, (3, 1), padding=(1, 0), groups=h)
        self.dconv1x3 = ConvBN(h, h, (1, 3), padding=(0, 1), groups=h)
        self.eca1 = ECA()
        self.ddconv3x1 = ConvBN(h, h, (3, 1), padding=(d, 0), dilation=(d, 1), groups=h)
        self.ddconv1x3 = ConvBN(h, h, (1, 3), padding=(0, d), dilation=(1, d), groups=h)
        self.eca2 = ECA()
        self.bn_lif_out = BNLIF(h)
        self.conv1x1_out = ConvBN(h, c, 1, bn=False, lif=False)

    def forward(self, x):
        y = self.conv1x3(self.conv3x1(self.conv1x1_in(self.bn_lif_in(x))))
        b1 = self.eca1(self.dconv1x3(self.dconv3x1(y)))
        b2 = self.eca2(self.ddconv1x3(self.ddconv3x1(y)))
        return self.conv1x1_out(self.bn_lif_out(b1 + b2 + y)) + x


class RepConvBN(nn.Module):
    """Re-parameterisable conv followed by BN (official ``RepConv`` + ``BatchNorm2d``).

    1×1 conv → BN whose output is padded by one pixel with the BN's value of zero →
    depthwise 3×3 (no padding) → 1×1 → BN → BN. In inference mode the whole chain is one
    3×3 convolution with bias (:meth:`collapse`).
    """

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn_pad = nn.BatchNorm2d(c)
        self.dw3x3 = nn.Conv2d(c, c, 3, groups=c, bias=False)
        self.pw1x1 = nn.Conv2d(c, c, 1, bias=False)
        self.bn_rep = nn.BatchNorm2d(c)
        self.bn_out = nn.BatchNorm2d(c)

    def _pad_value(self) -> torch.Tensor:
        bn = self.bn_pad  # the official layer pads with running-stat values, detached
        return (bn.bias.detach() - bn.running_mean * bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps))

    def forward(self, x):
        t, b = x.shape[:2]
        y = self.bn_pad(self.conv1x1(x.flatten(0, 1)))
        pv = self._pad_value().view(1, -1, 1, 1)
        y = F.pad(y - pv, [1, 1, 1, 1]) + pv
        y = self.bn_out(self.bn_rep(self.pw1x1(self.dw3x3(y))))
        return y.reshape(t, b, *y.shape[1:])

    @torch.no_grad()
    def collapse(self) -> layer.Conv2d:
        """The equivalent 3×3 conv (padding 1, bias) in inference mode."""
        a1, b1 = bn_affine(self.bn_pad)
        a2, b2 = bn_affine(self.bn_rep)
        a3, b3 = bn_affine(self.bn_out)
        a, bb = a3 * a2, a3 * b2 + b3  # two affines in a row
        w1 = self.conv1x1.weight[:, :, 0, 0] * a1[:, None]  # [C, Cin]
        d = self.dw3x3.weight[:, 0]  # [C, 3, 3]
        w2 = self.pw1x1.weight[:, :, 0, 0] * a[:, None]  # [Cout, C]
        kernel = torch.einsum("oc,ckl,ci->oikl", w2, d, w1)
        bias = w2 @ (d.sum((1, 2)) * b1) + bb
        c_out, c_in = kernel.shape[:2]
        conv = conv2d(c_in, c_out, 3, padding=1, bias=True).to(kernel)
        conv.weight.copy_(kernel)
        conv.bias.copy_(bias)
        return conv


class SDSA(nn.Module):
    """Spike-driven self-attention (official ``SDSA1``): out = Q ⊙ LIF(Σ_tokens K ⊙ V), no softmax.

    Q, K, V are binary (RepConv → BN → LIF). The token sum and the mask act per channel, so
    splitting channels into heads does not change the result; ``num_heads`` is kept for the record.
    """

    def __init__(self, c: int, num_heads: int = 2) -> None:
        super().__init__()
        if c % num_heads:
            raise ValueError(f"dim {c} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_lif = LIF()
        self.q_conv, self.k_conv, self.v_conv = RepConvBN(c), RepConvBN(c), RepConvBN(c)
        self.q_lif, self.k_lif, self.v_lif = LIF(), LIF(), LIF()
        self.talking_heads_lif = LIF()
        self.proj_conv = RepConvBN(c)

    def forward(self, x):
        x = self.head_lif(x)
        q = self.q_lif(self.q_conv(x))
        k = self.k_lif(self.k_conv(x))
        v = self.v_lif(self.v_conv(x))
        mask = self.talking_heads_lif((k * v).sum((-2, -1), keepdim=True))
        return self.proj_conv(q * mask)


class MLP(nn.Module):
    """LIF → 1×1 (C→4C, bias) → BN → LIF → 1×1 (4C→C, bias) → BN (official ``MS_MLP``)."""

    def __init__(self, c: int, ratio: float = 4.0) -> None:
        super().__init__()
        h = int(c * ratio)
        self.fc1_lif = LIF()
        self.fc1 = ConvBN(c, h, 1, lif=False, eps=1e-5)
        self.fc2_lif = LIF()
        self.fc2 = ConvBN(h, c, 1, lif=False, eps=1e-5)
        for m in (self.fc1, self.fc2):  # the official layers are Conv1d with bias
            conv = m.conv
            m.conv = conv2d(conv.in_channels, conv.out_channels, 1, bias=True)
            m.conv.default_init = True  # keeps PyTorch's Conv1d-style init (see SLTNet._init)

    def forward(self, x):
        return self.fc2(self.fc2_lif(self.fc1(self.fc1_lif(x))))


class STB(nn.Module):
    """Spike-driven transformer block (official ``MS_Block``): x += SDSA(x); x += MLP(x)."""

    def __init__(self, c: int, num_heads: int = 2) -> None:
        super().__init__()
        self.attn = SDSA(c, num_heads)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


class LC(nn.Module):
    """Long connection (skip): 3×1 C→C/2 + BNLIF, then 1×3 C/2→out + BNLIF."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv3x1 = ConvBN(cin, cin // 2, (3, 1), padding=(1, 0))
        self.conv1x3 = ConvBN(cin // 2, cout, (1, 3), padding=(0, 1))

    def forward(self, x):
        return self.conv1x3(self.conv3x1(x))


class FE(nn.Module):
    """Feature enhancement: x + P(x·channel gate) + P(x·spatial gate), P one shared 1×1 conv."""

    def __init__(self, c: int, r: int = 2) -> None:
        super().__init__()
        self.gap = layer.AdaptiveAvgPool2d(1, step_mode="m")
        self.ca1 = ConvBN(c, c // r, 1)
        self.ca2 = ConvBN(c // r, c, 1, bn=False, lif=False)
        self.sa = ConvBN(2, 1, 3, padding=1, lif=False)
        self.fuse = ConvBN(c, c, 1, bn=False, lif=False)

    def forward(self, x):
        ch = x * torch.sigmoid(self.ca2(self.ca1(self.gap(x))))
        stats = torch.cat([x.mean(2, keepdim=True), x.amax(2, keepdim=True)], 2)
        sp = x * torch.sigmoid(self.sa(stats))
        return x + self.fuse(ch) + self.fuse(sp)


class Up(nn.Module):
    """3×3 transposed conv, stride 2, output padding 1, bias (doubles H and W)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = layer.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1,
                                          bias=True, step_mode="m")

    def forward(self, x):
        return self.conv(x)


class PA(nn.Module):
    """Pixel attention: x · sigmoid(1×1 conv(x) + bias)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = conv2d(c, c, 1, bias=True)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(x))
