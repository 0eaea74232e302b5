"""Search-camera detector at batch 1: views per second, FP32 PyTorch vs onnxruntime, same run.

Each timed call is the full ``Detector.detect(image)`` on a 256x256 twin view:
preprocessing, network, decoding (in the graph for onnxruntime), thresholding and
building the ``Detection`` objects. Both runtimes run with 1 and with 2 threads (the machine's two cores).
Uses the shipped weights (``models/weights/detector.pt`` / ``.onnx``); without them, a
freshly initialised network of the same shape (the timing does not depend on the weights).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from foveate.tools.bench.common import Row, best_rate

NAME = "detector"
DESCRIPTION = "search-camera detector, batch 1: views/s and ms/view, FP32 PyTorch vs onnxruntime"
THREADS = (1, 2)  # one core, and both cores of the reference machine


def _runtimes(tmp: Path, threads: int):
    import torch

    from foveate.models.detector.config import DetectorConfig
    from foveate.models.detector.export import export_onnx
    from foveate.models.detector.model import DetectorNet
    from foveate.models.detector.pipeline import shipped_weights
    from foveate.models.detector.runtime import OnnxDetector, TorchDetector, load_checkpoint

    pt, onnx_path = shipped_weights(".pt"), shipped_weights(".onnx")
    if pt.is_file() and onnx_path.is_file():
        net, _ = load_checkpoint(pt)
        source = "shipped weights"
    else:
        torch.manual_seed(0)
        net = DetectorNet(DetectorConfig()).eval()
        onnx_path = tmp / "detector.onnx"
        if not onnx_path.is_file():
            export_onnx(net, onnx_path)
        source = "untrained network (no shipped weights)"
    return TorchDetector(net, threads=threads), OnnxDetector(onnx_path, threads=threads), source


def run(quick: bool = False) -> list[Row]:
    import torch

    from foveate.models.detector.data import ViewSpec, generate_views

    views = generate_views(ViewSpec(n_views=8, seed=99, views_per_world=8), progress=False).images
    repeats, min_time = (1, 0.2) if quick else (3, 2.0)
    rows: list[Row] = []
    saved_threads = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory() as d:
            for threads in THREADS:
                torch_det, ort_det, source = _runtimes(Path(d), threads)
                rows += _measure(torch_det, ort_det, source, views, threads, repeats, min_time)
    finally:
        torch.set_num_threads(saved_threads)
    return rows


def _measure(torch_det, ort_det, source, views, threads, repeats, min_time) -> list[Row]:
    import torch

    counter = {"i": 0}

    def one(det):
        def call() -> int:
            det.detect(views[counter["i"] % len(views)])
            counter["i"] += 1
            return 1
        return call

    for det in (torch_det, ort_det):  # warm up
        for v in views[:3]:
            det.detect(v)
    torch.set_num_threads(threads)
    rate_torch = best_rate(one(torch_det), repeats, min_time)
    rate_ort = best_rate(one(ort_det), repeats, min_time)
    size = "x".join(str(s) for s in torch_det.config.input_size)
    rows = [
        Row(NAME, f"PyTorch FP32 detect(), batch 1, {size}, {threads} thread(s)", round(rate_torch, 1), "views/s",
            goal=f"{source}; {1e3 / rate_torch:.2f} ms/view"),
        Row(NAME, f"onnxruntime FP32 detect(), batch 1, {size}, {threads} thread(s)", round(rate_ort, 1), "views/s",
            baseline=f"PyTorch FP32, {threads} thread(s)", ratio=rate_ort / rate_torch,
            goal=f"{1e3 / rate_ort:.2f} ms/view; INT8 goal <= 2 ms/view (500 views/s)"),
    ]
    if threads == THREADS[-1]:
        n_dets = float(np.mean([len(ort_det.detect(v)) for v in views]))
        rows.append(Row(NAME, "detections per view (twin views, score >= 0.3)", round(n_dets, 2), "detections",
                        goal=f"= {n_dets * rate_ort:.0f} detections/s with onnxruntime at {threads} thread(s)"))
    return rows
