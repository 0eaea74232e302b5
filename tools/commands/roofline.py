"""``foveate roofline MODEL.onnx --hardware NAME``: per-layer roofline of an ONNX graph."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "roofline"
HELP = "per-layer roofline (ops, bytes, intensity, bound, predicted time) of an ONNX model on a hardware profile"
DESCRIPTION = (
    "Walk a shape-inferred ONNX graph (float or QDQ-quantized) and give, per node, operations, bytes moved, "
    "arithmetic intensity, the bound (memory or compute) and a predicted time on a hardware profile from "
    "models/roofline/hardware.yaml. --probe measures this machine (STREAM-like copy, FP32/INT8 GEMM and "
    "dispatch through onnxruntime) and stores it as the 'local' profile; --measure adds onnxruntime's per-node "
    "times and the end-to-end time (local profile only); --plot writes the roofline PNG."
)


def add_arguments(p) -> None:
    p.description = DESCRIPTION
    p.add_argument("model", type=Path, nargs="?", help="ONNX model")
    p.add_argument("--hardware", default="local", help="profile name (see --list)")
    p.add_argument("--list", action="store_true", help="list hardware profiles and exit")
    p.add_argument("--probe", action="store_true", help="measure this machine and store the 'local' profile")
    p.add_argument("--measure", action="store_true", help="compare with onnxruntime's measured per-node times")
    p.add_argument("--plot", type=Path, default=None, help="roofline PNG")
    p.add_argument("--top", type=int, default=15, help="rows of the per-layer table (by predicted time)")
    p.add_argument("--json", type=Path, default=None, help="write every layer and the summary as JSON")
    p.add_argument("--threads", type=int, default=2)


def run(args) -> int:
    import numpy as np

    from foveate.models.roofline.analyze import (analyze, attach_measured, hardware_names, load_hardware, predict,
                                                 summary)
    from foveate.models.roofline.measure import probe, profile_nodes, save_local
    from foveate.models.roofline.plot import plot_roofline
    from foveate.system.errors import ConfigError

    if args.list:
        for n in hardware_names():
            hw = load_hardware(n)
            print(f"{n:<18} {hw.bandwidth_gbs:8.1f} GB/s {hw.fp32_gops:9.1f} GFLOP/s FP32 {hw.int8_gops:9.1f} GOP/s INT8"
                  f"  {hw.description}")
        return 0
    if args.probe:
        row = probe(args.threads)
        path = save_local(row)
        print(f"local profile -> {path}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
        if args.model is None:
            return 0
    if args.model is None:
        raise ConfigError("give an ONNX model (or --list / --probe)")
    if not args.model.is_file():
        raise ConfigError(f"{args.model}: model file not found")
    hw = load_hardware(args.hardware)
    layers = predict(analyze(args.model), hw)
    s = summary(layers, hw)
    if args.measure:
        import onnx

        from foveate.models.quant.ptq import input_name

        proto = onnx.load(str(args.model))
        name = input_name(proto)
        shape = [d.dim_value or 1 for d in next(i for i in proto.graph.input if i.name == name).type.tensor_type.shape.dim]
        x = np.random.default_rng(0).random(shape).astype(np.float32)
        per, wall_ms = profile_nodes(args.model, {name: x}, args.threads)
        s["unmatched_kernel_ms"] = attach_measured(layers, per) / 1e3
        s["measured_ms"] = wall_ms
        s["measured_kernel_ms"] = sum(per.values()) / 1e3
        s["matched_nodes"] = sum(lay.measured_us is not None for lay in layers)
    print(f"{args.model} on {hw.name} ({hw.description}): {s['nodes']} nodes, {s['gops']:.3f} GOP, "
          f"{s['mbytes']:.1f} MB moved, predicted {s['predicted_ms']:.2f} ms "
          f"(dispatch {s['dispatch_ms']:.2f} ms; INT8 share of ops {100 * s['int8_ops_share']:.0f}%)")
    print("time share by bound: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in s["time_share"].items()))
    if args.measure:
        print(f"measured end to end {s['measured_ms']:.2f} ms; onnxruntime kernels {s['measured_kernel_ms']:.2f} ms "
              f"({s['unmatched_kernel_ms']:.2f} ms in nodes onnxruntime inserted, e.g. layout reorders)")
    print(f"\n| layer | op | prec | MOP | kB | AI | bound | pred µs |{' meas µs |' if args.measure else ''}")
    print(f"|---|---|---|---|---|---|---|---|{'---|' if args.measure else ''}")
    for lay in sorted(layers, key=lambda x: -x.predicted_us)[:args.top]:
        meas = "" if not args.measure else (f" {lay.measured_us:.1f} |" if lay.measured_us is not None else " (in group) |")
        print(f"| {lay.name[-48:]} | {lay.op} | {lay.precision} | {lay.ops / 1e6:.2f} | {lay.bytes / 1e3:.1f} | "
              f"{lay.ai:.1f} | {lay.bound} | {lay.predicted_us:.1f} |{meas}")
    if args.plot:
        plot_roofline(layers, hw, args.plot, title=f"{args.model.name} on {hw.name}")
        print(f"\nplot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps({"summary": s, "layers": [x.as_dict() for x in layers]}, indent=1, default=float))
    return 0
