"""The LIF neuron of SLTNet: leak 0.25, effective threshold 0.5, hard reset, tanh-shaped surrogate.

Dynamics per time step (official ``LIFAct``): ``u = 0.25 * u + x``, ``s = [u > 0.5]``,
``u = u * (1 - s)`` (the reset is not detached). The membrane starts at zero on every
call, so each event window is segmented independently.

The surrogate is a spikingjelly ``SurrogateFunctionBase`` so it can also drive
spikingjelly's own neurons. It is written on ``x = u - threshold`` (the spikingjelly
convention): the backward pass differentiates
``g(x) = (tanh(a * clip(x, -1/2, 1/2)) + tanh(a/2)) / (2 tanh(a/2))`` with ``a = 3``,
which is zero outside ``|x| <= 1/2`` and peaks at ``a / (2 tanh(a/2)) ~= 1.66``.
"""

from __future__ import annotations

import math

import torch
from spikingjelly.activation_based.surrogate import SurrogateFunctionBase
from torch import nn

LEAK = 0.25
THRESHOLD = 0.5
SURROGATE_ALPHA = 3.0


class _tanh_surrogate(torch.autograd.Function):
    """Heaviside ``x > 0`` forward; derivative of the clipped, rescaled tanh backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        a = ctx.alpha
        inside = (x.abs() <= 0.5).to(x.dtype)
        grad = a * (1.0 - torch.tanh(a * x) ** 2) / (2.0 * math.tanh(a / 2.0)) * inside
        return grad_output * grad, None


class TanhSurrogate(SurrogateFunctionBase):
    """SLTNet's surrogate spike function (see the module docstring)."""

    def __init__(self, alpha: float = SURROGATE_ALPHA, spiking: bool = True) -> None:
        super().__init__(spiking=spiking, alpha=alpha)

    @staticmethod
    def spiking_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        return _tanh_surrogate.apply(x, alpha)

    @staticmethod
    def primitive_function(x: torch.Tensor, alpha: float) -> torch.Tensor:
        c = math.tanh(alpha / 2.0)
        return (torch.tanh(alpha * x.clamp(-0.5, 0.5)) + c) / (2.0 * c)


class LIF(nn.Module):
    """Multi-step LIF on ``[T, ...]`` tensors, stateless between calls.

    Without gradients (inference, ONNX export) the spike is a plain ``(u > 0.5)``
    comparison, so exported graphs hold only standard operators.
    """

    def __init__(self, leak: float = LEAK, threshold: float = THRESHOLD) -> None:
        super().__init__()
        self.leak = leak
        self.threshold = threshold
        self.surrogate = TanhSurrogate()

    def _spike(self, u: torch.Tensor) -> torch.Tensor:
        if u.requires_grad:
            return self.surrogate(u - self.threshold)
        return (u > self.threshold).to(u.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 1:  # T = 1: the membrane is the input
            return self._spike(x)
        u = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            u = self.leak * u + x[t]
            s = self._spike(u)
            out.append(s)
            u = u * (1.0 - s)
        return torch.stack(out)

    def extra_repr(self) -> str:
        return f"leak={self.leak}, threshold={self.threshold}, hard_reset=True"
