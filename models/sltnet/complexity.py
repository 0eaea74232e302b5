"""Parameter and multiply-accumulate counts of SLTNet, and the faithfulness report.

MACs are analytic: forward hooks read each convolution's real input/output shapes and
count ``output elements x (C_in / groups) x kernel area`` (transposed convs: input
elements x C_out / groups x kernel area). Element-wise work (BN, LIF, sigmoid gates,
resizes) is not counted, as in the paper's conv-MAC figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from foveate.models.sltnet.config import SLTNetConfig

# Reference figures (see docs/sltnet.md): the official DDD17 checkpoint logs 413,508
# parameters, of which 44,576 belong to modules built but never run in forward().
OFFICIAL_LOGGED_PARAMS = 413_508
OFFICIAL_USED_PARAMS_DDD17 = 368_932
REFERENCE_GMACS_DDD17 = 1.39  # analytic conv MACs at 200x352, T=1


def official_unused_params() -> dict[str, int]:
    """Parameters of the official DDD17 model's modules that forward() never calls.

    Read off the official model/SLTNet.py and model/module/SDSA.py: each ``MS_Block``
    also builds ``SDSA3`` (4 RepConv+BN) and ``SDSA2`` (3 RepConv+BN) but runs only ``SDSA1``;
    each ``Spike_LMSBModule`` builds two depthwise 3x3 Spike_Convs with BN (``conv3x3_1/2``)
    it never calls; ``UpsampleingBlock.bn`` and ``DownSamplingBlock.bnlif`` are commented out
    of forward(); ``PA1`` and ``PA2`` are unused (only ``PA3`` runs).
    """
    dim = 32
    repconv_bn = 2 * dim * dim + 9 * dim + 3 * 2 * dim  # two 1x1, one dw 3x3, three BNs
    scb_channels = [64] * 3 + [128] * 3 + [32] * 3 + [32, 16, 16]
    return {
        "STB: SDSA3 + SDSA2 (x2 blocks)": 2 * 7 * repconv_bn,
        "SCB: conv3x3_1 + conv3x3_2 (x12 blocks)": sum(2 * ((c // 2) * 9 + 2 * (c // 2)) for c in scb_channels),
        "Up: bn (x3)": 3 * 2 * 16,
        "Down: bnlif (x3)": 2 * (64 + 128 + 32),
        "PA1 + PA2": 2 * (16 * 16 + 16),
    }


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class LayerMacs:
    name: str
    kind: str
    macs: int  # per inference (batch 1), summed over the T steps


def _conv_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    k = 1
    for s in m.kernel_size:
        k *= s
    if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
        return inp.numel() * (m.out_channels // m.groups) * k
    return out.numel() * (m.in_channels // m.groups) * k


CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose1d, nn.ConvTranspose2d)


def layer_macs(model: nn.Module, config: SLTNetConfig) -> list[LayerMacs]:
    """MACs of every convolution for one input of ``config``'s size (batch 1)."""
    rows: list[LayerMacs] = []
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, CONV_TYPES):
            def hook(mod, args, out, name=name):
                rows.append(LayerMacs(name, type(mod).__name__, _conv_macs(mod, args[0], out)))
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, config.bins, config.height, config.width))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows


def faithfulness_report(model: nn.Module) -> dict:
    """Parameter count and analytic MACs against the official model's figures."""
    cfg: SLTNetConfig = model.config
    params = count_params(model)
    macs = sum(r.macs for r in layer_macs(model, cfg))
    unused = official_unused_params()
    report = {
        "config": cfg.name,
        "input": f"{cfg.bins}x{cfg.height}x{cfg.width}",
        "time_steps": cfg.time_steps,
        "params": params,
        "gmacs": macs / 1e9,
        "official_unused_params": unused,
    }
    if cfg.name in ("ddd17", "twin") and cfg.num_classes == 6:
        report["reference_params"] = OFFICIAL_USED_PARAMS_DDD17
        report["params_rel_diff"] = params / OFFICIAL_USED_PARAMS_DDD17 - 1
        report["params_plus_unused"] = params + sum(unused.values())
        report["official_logged_params"] = OFFICIAL_LOGGED_PARAMS
        if (cfg.height, cfg.width, cfg.time_steps) == (200, 352, 1):
            report["reference_gmacs"] = REFERENCE_GMACS_DDD17
            report["gmacs_rel_diff"] = macs / 1e9 / REFERENCE_GMACS_DDD17 - 1
        report["params_ok"] = abs(report["params_rel_diff"]) <= 0.01
        if "gmacs_rel_diff" in report:
            report["gmacs_ok"] = abs(report["gmacs_rel_diff"]) <= 0.05
    return report


def format_report(rep: dict) -> str:
    lines = [f"SLTNet faithfulness ({rep['config']}, input {rep['input']}, T={rep['time_steps']})"]
    lines.append(f"  parameters: {rep['params']:,}")
    if "reference_params" in rep:
        lines.append(f"    official, used in forward(): {rep['reference_params']:,} "
                     f"({rep['params_rel_diff']:+.2%}; within 1%: {'yes' if rep['params_ok'] else 'NO'})")
        lines.append(f"    + official unused modules {sum(rep['official_unused_params'].values()):,} = "
                     f"{rep['params_plus_unused']:,} (official log: {rep['official_logged_params']:,})")
    lines.append(f"  analytic MACs: {rep['gmacs']:.3f} G")
    if "reference_gmacs" in rep:
        lines.append(f"    reference: {rep['reference_gmacs']} G ({rep['gmacs_rel_diff']:+.2%}; "
                     f"within 5%: {'yes' if rep['gmacs_ok'] else 'NO'})")
    return "\n".join(lines)
