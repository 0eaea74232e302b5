"""Measurements for the roofline: this machine's probes and onnxruntime per-node times.

``probe()`` measures the local profile through the same runtime the models use:
bandwidth with a STREAM-like copy (numpy, arrays far larger than the caches), FP32 and INT8
peaks with a large GEMM in onnxruntime (``MatMul`` float, ``MatMulInteger`` u8×s8), and the
dispatch cost per node from a chain of tiny ``Add`` nodes. ``profile_nodes()`` runs
onnxruntime's profiler and returns per-node kernel times (µs, median over runs).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

LOCAL_PROFILE = Path(".cache") / "roofline" / "local.yaml"


def _session(model: onnx.ModelProto | bytes, threads: int, profile: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile:
        so.enable_profiling = True
        so.profile_file_prefix = profile
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def _best(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def stream_copy_gbs(mbytes: int = 256, repeats: int = 5) -> float:
    """Copy bandwidth (read + write bytes / s) of a numpy copy of ``mbytes`` MB."""
    a = np.ones(mbytes * 1024 * 1024 // 8)
    b = np.empty_like(a)
    return 2 * a.nbytes / _best(lambda: np.copyto(b, a), repeats) / 1e9


def _gemm_model(n: int, integer: bool) -> onnx.ModelProto:
    if integer:
        w = helper.make_tensor("w", TensorProto.INT8, (n, n), np.random.default_rng(0).integers(-60, 60, (n, n), dtype=np.int8).tobytes(), raw=True)
        node = helper.make_node("MatMulInteger", ["x", "w"], ["y"])
        x = helper.make_tensor_value_info("x", TensorProto.UINT8, (n, n))
        y = helper.make_tensor_value_info("y", TensorProto.INT32, (n, n))
    else:
        w = helper.make_tensor("w", TensorProto.FLOAT, (n, n), np.random.default_rng(0).normal(size=(n, n)).astype(np.float32).tobytes(), raw=True)
        node = helper.make_node("MatMul", ["x", "w"], ["y"])
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, (n, n))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, (n, n))
    g = helper.make_graph([node], "gemm", [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def gemm_gops(n: int = 1024, integer: bool = False, threads: int = 2, repeats: int = 5) -> float:
    sess = _session(_gemm_model(n, integer), threads)
    x = (np.random.default_rng(1).integers(0, 255, (n, n), dtype=np.uint8) if integer
         else np.random.default_rng(1).normal(size=(n, n)).astype(np.float32))
    return 2.0 * n ** 3 / _best(lambda: sess.run(None, {"x": x}), repeats) / 1e9


def dispatch_us(nodes: int = 200, threads: int = 2, repeats: int = 20) -> float:
    """Per-node overhead: a chain of ``nodes`` Add nodes on an 8-element tensor."""
    one = helper.make_tensor("one", TensorProto.FLOAT, (8,), np.ones(8, np.float32).tobytes(), raw=True)
    chain = [helper.make_node("Add", ["x" if i == 0 else f"t{i - 1}", "one"], [f"t{i}"]) for i in range(nodes)]
    g = helper.make_graph(chain, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (8,))],
                          [helper.make_tensor_value_info(f"t{nodes - 1}", TensorProto.FLOAT, (8,))], [one])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep the chain
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.zeros(8, np.float32)
    return 1e6 * _best(lambda: sess.run(None, {"x": x}), repeats) / nodes


def probe(threads: int = 2, quick: bool = False) -> dict:
    """This machine's profile (the ``local`` row of the hardware table), with the load average."""
    n = 512 if quick else 1024
    load_before = os.getloadavg()
    row = {
        "description": f"this machine ({os.cpu_count()} cores), onnxruntime CPU, {threads} threads",
        "bandwidth_gbs": round(stream_copy_gbs(64 if quick else 256), 2),
        "fp32_gops": round(gemm_gops(n, False, threads), 1),
        "int8_gops": round(gemm_gops(n, True, threads), 1),
        "dispatch_us": round(dispatch_us(threads=threads), 2),
    }
    row["source"] = (f"foveate roofline --probe, {time.strftime('%Y-%m-%d %H:%M')} UTC, load average "
                     f"{load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after")
    return row


def save_local(row: dict, path: Path = LOCAL_PROFILE) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(row, sort_keys=False))
    return path


def profile_nodes(model: str | Path | bytes | onnx.ModelProto, feed: dict, threads: int = 2, runs: int = 10
                  ) -> tuple[dict[str, float], float]:
    """(median kernel µs per node name, median end-to-end ms) from onnxruntime's profiler."""
    if isinstance(model, (str, Path)):
        model = Path(model).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        sess = _session(model, threads, profile=str(Path(tmp) / "prof"))
        for _ in range(3):
            sess.run(None, feed)
        walls = []
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, feed)
            walls.append(time.perf_counter() - t0)
        trace = json.loads(Path(sess.end_profiling()).read_text())
    per: dict[str, list[float]] = {}
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            per.setdefault(ev["args"].get("node_name", ev["name"][:-12]), []).append(float(ev["dur"]))
    # the first 3 calls were warm-up: keep the last ``runs`` samples per node
    return {k: float(np.median(v[-runs:])) for k, v in per.items()}, 1e3 * float(np.median(walls))
