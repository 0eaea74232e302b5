"""SLTNet energy per window under FP32 and INT8 operation-energy tables, from measured firing rates.

Reuses :func:`foveate.models.sltnet.energy.measure_energy` (per conv layer: MACs, whether its
input is binary spikes, the measured firing rate) and prices the same counts with each table:
real-valued inputs cost MACs, spike inputs cost firing-rate × MACs accumulates. Tables (45 nm,
Horowitz ISSCC 2014, as used by spikingjelly and the SNN segmentation papers): FP32 MAC 4.6 pJ,
AC 0.9 pJ; INT8 MAC 0.23 pJ (0.2 multiply + 0.03 add), AC 0.03 pJ. Element-wise work (LIF,
BN, gates) and memory traffic are not counted; the roofline counts the bytes.
"""

from __future__ import annotations

TABLES = {"fp32": {"mac_pj": 4.6, "ac_pj": 0.9}, "int8": {"mac_pj": 0.23, "ac_pj": 0.03}}


def energy_tables(rows) -> dict:
    """{table: {snn_uj, ann_uj, macs_g, sops_g}} per window for ``measure_energy`` rows."""
    macs_real = sum(r.macs for r in rows if not r.binary_input)
    sops = sum(r.sops for r in rows)
    all_macs = sum(r.macs for r in rows)
    out = {}
    for name, t in TABLES.items():
        out[name] = {"snn_uj": (macs_real * t["mac_pj"] + sops * t["ac_pj"]) / 1e6,
                     "ann_uj": all_macs * t["mac_pj"] / 1e6, **t}
    out["counts"] = {"macs_real_input_g": macs_real / 1e9, "sops_g": sops / 1e9, "dense_macs_g": all_macs / 1e9,
                     "mean_firing_rate_spike_layers": (sum(r.firing_rate for r in rows if r.binary_input)
                                                       / max(1, sum(r.binary_input for r in rows)))}
    return out


def sltnet_energy(weights, voxels, batch: int = 4) -> dict:
    """Energy tables of an SLTNet checkpoint over model-ready windows ``[N, bins, H, W]``."""
    import torch

    from foveate.models.sltnet.energy import measure_energy
    from foveate.models.sltnet.export import fold_for_inference
    from foveate.models.sltnet.runtime import load_model

    model = fold_for_inference(load_model(weights))
    x = torch.from_numpy(voxels.astype("float32"))
    return energy_tables(measure_energy(model, (x[i:i + batch] for i in range(0, len(x), batch))))
