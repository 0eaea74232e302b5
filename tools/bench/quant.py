"""FP32 vs INT8 (and W4A8) onnxruntime: latency and accuracy of the detector and SLTNet, one run.

Per model: the float export, INT8 (percentile calibration on 64 EDA-selected samples, heads in
float, per-channel symmetric weights, reduce_range as the CPU needs) and W4A8 (same, 4-bit
per-channel weights). Accuracy on the model's held-out twin split (detector mAP@0.5 on the
test views, SLTNet mIoU on the validation windows). Latency: batch 1, FP32 and INT8 sessions
run interleaved (round-robin, median per model) with 2 and with 1 intra-op threads; the load
average is recorded beside them because the machine is shared. Then: calibration selection
(EDA vs three random draws of 16 samples), RepQuant-style equalisation on/off, and float vs
INT8 under corruptions.

SLTNet weights: ``models/weights/sltnet_twin.pt`` when shipped, else the small sanity-run
checkpoint ``out/quant/sltnet_small/best.pt`` (see docs/deployment.md for the command), else a
seeded untrained model on random voxel grids, latency only (an untrained network's accuracy
means nothing). SLTNet's latency rows add the thread CPU time per call (one thread), which the
other processes on a shared machine do not inflate, and the traced (non-lean) FP32 export.
``foveate bench quant-sltnet`` runs the SLTNet rows alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from foveate.tools.bench.common import Row

NAME = "quant"
DESCRIPTION = "FP32 vs INT8 / W4A8 onnxruntime: latency and accuracy (detector mAP@0.5, SLTNet mIoU), calibration selection, robustness"

SLTNET_FALLBACK = Path("out/quant/sltnet_small/best.pt")


def _latency(models: dict[str, bytes], x: np.ndarray, threads: int, rounds: int,
             cpu: dict[str, float] | None = None) -> dict[str, float]:
    """Median wall-clock ms per call of each model, run round-robin with the order rotated every round (a
    fixed order measurably favoured the model that ran last in each round). With one thread onnxruntime runs
    on the calling thread, so ``cpu`` (when given) receives the median thread CPU ms per call: the
    time the call computed, without the time other processes held the core (the machine is shared)."""
    from foveate.models.quant.ptq import session

    sess = {k: session(m, threads) for k, m in models.items()}
    name = {k: s.get_inputs()[0].name for k, s in sess.items()}
    for k, s in sess.items():
        for _ in range(3):
            s.run(None, {name[k]: x})
    times: dict[str, list[float]] = {k: [] for k in sess}
    cpu_times: dict[str, list[float]] = {k: [] for k in sess}
    order = list(sess.items())
    for r in range(rounds):
        for k, s in order[r % len(order):] + order[:r % len(order)]:
            c0, t0 = time.thread_time(), time.perf_counter()
            s.run(None, {name[k]: x})
            times[k].append(time.perf_counter() - t0)
            cpu_times[k].append(time.thread_time() - c0)
    if cpu is not None:
        cpu.update({k: 1e3 * float(np.median(v)) for k, v in cpu_times.items()})
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def _model_rows(target, quick: bool, reference_fp32: bytes | None = None) -> list[Row]:
    from foveate.models.quant.corrupt import corrupt_events, corrupt_images
    from foveate.models.quant.pipeline import Plan
    from foveate.models.quant.pipeline import run as quantize
    b = f"quant/{target.name}"
    rows: list[Row] = []
    metric = target.metric
    load0 = os.getloadavg()[0]
    q8, card8 = quantize(target.float_model, target.candidates, Plan(target.recipe(), target.calib_size), kind=target.name,
                         check_inputs=target.eval_inputs[:4])
    q4, _ = quantize(target.float_model, target.candidates, Plan(target.recipe(weight_bits=4), target.calib_size),
                     kind=target.name)
    m8, m4 = q8.SerializeToString(), q4.SerializeToString()
    rows.append(Row(b, "model size FP32 / INT8 / W4A8", len(target.float_model) / 1e3, "kB",
                    f"INT8 {len(m8) / 1e3:.0f} kB, W4A8 {len(m4) / 1e3:.0f} kB"))
    rows.append(Row(b, "fused INT8 kernels vs reference Q/DQ (relative L2)", card8["kernel_check"]["relative_l2_worst"],
                    "", "must stay < 0.05", goal="ok" if card8["kernel_check"]["ok"] else "FAILED"))
    if card8.get("spikes"):
        sp = card8["spikes"]
        rows.append(Row(b, "spike layers folded into integer convs / cast to u8 / BN thresholds", sp["conv_spikes"], "",
                        f"{sp['cast_spikes']} cast, {sp['bn_thresholds']} BN"))
    acc = None
    if target.accuracy is not None:
        fp = target.accuracy(target.float_model, None)["score"]
        a8 = target.accuracy(m8, None)["score"]
        a4 = target.accuracy(m4, None)["score"]
        acc = fp
        rows += [Row(b, f"FP32 {metric}", fp, "points"),
                 Row(b, f"INT8 {metric}", a8, "points", "FP32", goal=f"drop {fp - a8:+.2f} (goal <= 0.5)"),
                 Row(b, f"W4A8 {metric}", a4, "points", "FP32", goal=f"drop {fp - a4:+.2f} (goal <= 2)")]
    x = target.eval_inputs[:1]
    rounds = 10 if quick else 120
    models = {"fp32": target.float_model, "int8": m8, "w4a8": m4}
    if reference_fp32 is not None:
        models["fp32 (traced export)"] = reference_fp32
    for threads in (2, 1):
        cpu: dict[str, float] = {}
        lat = _latency(models, x, threads, rounds, cpu if threads == 1 else None)
        la = os.getloadavg()[0]
        rows += [Row(b, f"FP32 latency, {threads} thread(s)", lat["fp32"], "ms", f"load avg {la:.1f}"),
                 Row(b, f"INT8 latency, {threads} thread(s)", lat["int8"], "ms", "FP32", lat["fp32"] / lat["int8"],
                     goal=">= 1.5x"),
                 Row(b, f"W4A8 latency, {threads} thread(s)", lat["w4a8"], "ms", "FP32", lat["fp32"] / lat["w4a8"])]
        if reference_fp32 is not None:
            rows.append(Row(b, f"FP32 latency of the traced (non-lean) export, {threads} thread(s)",
                            lat["fp32 (traced export)"], "ms", "FP32", lat["fp32"] / lat["fp32 (traced export)"]))
        for k, label in (("fp32", "FP32"), ("int8", "INT8")) if cpu else ():
            rows.append(Row(b, f"{label} CPU time per call, 1 thread", cpu[k], "ms", "FP32", cpu["fp32"] / cpu[k],
                            goal=">= 1.5x" if k == "int8" else ""))
    if acc is None:
        return rows
    # calibration selection: EDA vs random, same size
    n = 16
    eda, _ = quantize(target.float_model, target.candidates, Plan(target.recipe(), n, "eda"), kind=target.name)
    d_eda = acc - target.accuracy(eda.SerializeToString(), None)["score"]
    d_rnd = []
    for seed in range(1 if quick else 3):
        r, _ = quantize(target.float_model, target.candidates, Plan(target.recipe(), n, "random", seed=seed),
                        kind=target.name)
        d_rnd.append(acc - target.accuracy(r.SerializeToString(), None)["score"])
    rows.append(Row(b, f"INT8 drop, {n} EDA-selected calibration samples", d_eda, "points",
                    f"random {n}: " + ", ".join(f"{d:+.2f}" for d in d_rnd)))
    # RepQuant-style equalisation before quantization
    eq, eq_card = quantize(target.float_model, target.candidates, Plan(target.recipe(), 64, equalize=True),
                           kind=target.name)
    rows.append(Row(b, "INT8 drop with conv->conv equalisation (alpha 0.5)",
                    acc - target.accuracy(eq.SerializeToString(), None)["score"], "points",
                    f"{len(eq_card['equalize']['sites'])} sites folded"))
    # robustness under corruptions: float vs INT8 on the same corrupted inputs
    image = target.eval_inputs.shape[1] == 1
    kinds = ("noise", "blur", "low_contrast", "low_light") if image else ("rate_drop", "rate_up", "blur")
    for k in kinds[:2] if quick else kinds:
        xs = corrupt_images(target.eval_inputs, k) if image else corrupt_events(target.eval_inputs, k)
        f = target.accuracy(target.float_model, xs)["score"]
        i = target.accuracy(m8, xs)["score"]
        rows.append(Row(b, f"corrupted ({k}): FP32 / INT8 {metric}", i, "points", f"FP32 {f:.2f}",
                        goal=f"INT8 drop {f - i:+.2f}"))
    # TTAQ's concern: calibrate with a quarter of the samples corrupted, score on the first corruption
    mc, _ = quantize(target.float_model, target.candidates, Plan(target.recipe(), 64, corrupted_share=0.25),
                     kind=target.name)
    xs = corrupt_images(target.eval_inputs, kinds[0]) if image else corrupt_events(target.eval_inputs, kinds[0])
    f = target.accuracy(target.float_model, xs)["score"]
    rows.append(Row(b, f"corrupted ({kinds[0]}), INT8 calibrated with 25% corrupted samples",
                    target.accuracy(mc.SerializeToString(), xs)["score"], "points", f"FP32 {f:.2f}",
                    goal=f"clean: drop {acc - target.accuracy(mc.SerializeToString(), None)['score']:+.2f}"))
    rows.append(Row(b, "load average during the model's rows", os.getloadavg()[0], "", f"start {load0:.1f}"))
    return rows


def run(quick: bool = False) -> list[Row]:
    from foveate.models.quant.targets import detector_target

    det = detector_target(test_views=200 if quick else None)
    return _model_rows(det, quick) + sltnet_rows(quick)


def sltnet_rows(quick: bool = False) -> list[Row]:
    """SLTNet's rows (also ``foveate bench quant-sltnet`` alone): trained weights when they exist, else a
    seeded untrained model on random voxel grids (latency and graph rows only)."""
    from foveate.models.quant.targets import (SLTNET_WEIGHTS, random_voxels, seeded_sltnet, sltnet_inputs_target,
                                              sltnet_target)
    from foveate.models.sltnet.export import export_onnx
    from foveate.models.sltnet.runtime import load_model

    rows: list[Row] = []
    shipped = SLTNET_WEIGHTS
    weights = shipped if shipped.is_file() else SLTNET_FALLBACK if SLTNET_FALLBACK.is_file() else None
    if weights is None:  # latency only: an untrained network's accuracy means nothing
        model = seeded_sltnet("twin", 0)
        slt = sltnet_inputs_target(model, random_voxels(16 if quick else 64, model.config, 1), "seeded SLTNet")
        slt.eval_inputs = random_voxels(4, model.config, 2)
        rows.append(Row("quant/sltnet", "weights: none (seeded untrained model, random voxel grids)", 0, "",
                        "latency only; accuracy rows appear once models/weights/sltnet_twin.pt exists"))
        return rows + _model_rows(slt, quick, export_onnx(model, lean=False))
    slt = sltnet_target(weights)
    shown = weights.name if weights == shipped else weights  # no machine paths in the report
    rows.append(Row("quant/sltnet", f"weights: {shown}", 0, "", "sanity-run checkpoint" if weights != shipped
                    else "shipped"))
    rows += _model_rows(slt, quick, export_onnx(load_model(weights), lean=False))
    from foveate.models.quant.energy import sltnet_energy

    e = sltnet_energy(weights, slt.eval_inputs[:8 if quick else None])
    c = e["counts"]
    for table in ("fp32", "int8"):
        rows.append(Row("quant/sltnet", f"energy per window, {table.upper()} table ({e[table]['mac_pj']} pJ MAC, "
                        f"{e[table]['ac_pj']} pJ AC)", e[table]["snn_uj"], "uJ", "same network as an ANN",
                        e[table]["ann_uj"] / e[table]["snn_uj"]))
    rows.append(Row("quant/sltnet", "energy counts: real-input G MACs / G SOPs / mean spike-layer firing rate",
                    c["macs_real_input_g"], "G MAC", f"{c['sops_g']:.4f} G SOP, rate "
                    f"{c['mean_firing_rate_spike_layers']:.3f}"))
    return rows
