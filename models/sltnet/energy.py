"""Energy estimate of SLTNet from measured firing rates (the method of the SNN segmentation papers).

Per convolution layer: when every input it received is binary (spikes), its cost is
``SOPs = firing rate x MACs`` synaptic accumulates at 0.9 pJ each; otherwise (real-valued
input: the voxel grid, the membrane-stream 1×1 projections, interpolated maps, gated FE
features, transposed convs fed by sums) it costs its MACs at 4.6 pJ each (45 nm, 32-bit
float: Horowitz 2014). The firing rate is the fraction of non-zero input elements,
accumulated over all windows given. Element-wise work (BN, LIF, gates) is not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

import torch
from torch import nn

from foveate.models.sltnet.complexity import CONV_TYPES, _conv_macs

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


@dataclass
class LayerEnergy:
    name: str
    kind: str
    binary_input: bool
    firing_rate: float  # fraction of non-zero inputs (1.0 when the input is real-valued)
    macs: float  # per window
    sops: float  # per window (0 for real-valued input)
    energy_pj: float  # per window

    def as_dict(self) -> dict:
        return asdict(self)


def measure_energy(model: nn.Module, windows: Iterable[torch.Tensor]) -> list[LayerEnergy]:
    """Run ``model`` (eval mode) on ``windows`` (each ``[B, bins, H, W]``) and cost every conv."""
    stats: dict[str, dict] = {}
    kinds: dict[str, str] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, CONV_TYPES):
            kinds[name] = type(m).__name__

            def hook(mod, args, out, name=name):
                x = args[0]
                s = stats.setdefault(name, {"macs": 0, "nonzero": 0, "numel": 0, "binary": True})
                s["macs"] += _conv_macs(mod, x, out)
                s["nonzero"] += int(torch.count_nonzero(x))
                s["numel"] += x.numel()
                if s["binary"]:
                    s["binary"] = bool(torch.all((x == 0) | (x == 1)))
            hooks.append(m.register_forward_hook(hook))
    n_windows = 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for w in windows:
                model(w)
                n_windows += w.shape[0]
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if n_windows == 0:
        raise ValueError("measure_energy needs at least one window")
    rows = []
    for name, s in stats.items():
        macs = s["macs"] / n_windows
        if s["binary"]:
            fr = s["nonzero"] / max(s["numel"], 1)
            sops = fr * macs
            rows.append(LayerEnergy(name, kinds[name], True, fr, macs, sops, sops * E_AC_PJ))
        else:
            rows.append(LayerEnergy(name, kinds[name], False, 1.0, macs, 0.0, macs * E_MAC_PJ))
    return rows


def summarise(rows: list[LayerEnergy]) -> dict:
    macs_real = sum(r.macs for r in rows if not r.binary_input)
    sops = sum(r.sops for r in rows)
    total_pj = sum(r.energy_pj for r in rows)
    all_macs = sum(r.macs for r in rows)
    return {
        "layers": len(rows),
        "binary_input_layers": sum(r.binary_input for r in rows),
        "macs_real_input_g": macs_real / 1e9,
        "sops_g": sops / 1e9,
        "energy_mj": total_pj / 1e9,
        "ann_equivalent_energy_mj": all_macs * E_MAC_PJ / 1e9,
        "e_mac_pj": E_MAC_PJ,
        "e_ac_pj": E_AC_PJ,
    }


def format_energy(rows: list[LayerEnergy], top: int | None = None) -> str:
    s = summarise(rows)
    lines = [f"{'layer':<34} {'input':<7} {'rate':>6} {'MMACs':>9} {'MSOPs':>9} {'uJ':>8}"]
    shown = sorted(rows, key=lambda r: -r.energy_pj)[:top] if top else rows
    for r in shown:
        lines.append(f"{r.name:<34} {'spikes' if r.binary_input else 'real':<7} {r.firing_rate:6.3f} "
                     f"{r.macs / 1e6:9.2f} {r.sops / 1e6:9.2f} {r.energy_pj / 1e6:8.2f}")
    lines.append(f"total: {s['energy_mj']:.3f} mJ per window = {s['macs_real_input_g']:.3f} G MACs x {E_MAC_PJ} pJ "
                 f"+ {s['sops_g']:.3f} G SOPs x {E_AC_PJ} pJ "
                 f"(same network as an ANN: {s['ann_equivalent_energy_mj']:.3f} mJ)")
    return "\n".join(lines)
