"""SLTNet inference speed at DDD17's 200x352 input: FP32 PyTorch vs FP32 and INT8 onnxruntime, in one run.

Batch 1, T=1, 2 intra-op threads for every runtime. The PyTorch rows run the model as trained
(BN and RepConv unfolded) and in its folded inference form; onnxruntime runs the folded
export and the INT8 model that ``foveate quantize`` makes of it (the shipped SLTNet recipe,
calibrated on random voxel grids). The weights are the initialisation with set batch-norm
statistics: dense CPU inference costs the same whatever the spikes are.
"""

from __future__ import annotations

import numpy as np

from foveate.tools.bench.common import Row, best_rate

NAME = "sltnet"
DESCRIPTION = "SLTNet frames/s at 200x352 (DDD17 config): PyTorch FP32 vs onnxruntime FP32 and INT8, 2 threads"
THREADS = 2


def _model():
    import torch

    from foveate.models.sltnet.model import SLTNet

    torch.manual_seed(0)
    model = SLTNet("ddd17")
    cfg = model.config
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():  # realistic BN statistics: one pass with a cumulative average
        for bn in bns:
            bn.momentum = None
        model.train()
        model(torch.randn(2, cfg.bins, cfg.height, cfg.width))
        for bn in bns:
            bn.momentum = 0.1
    return model.eval()


def run(quick: bool = False) -> list[Row]:
    import onnxruntime as ort
    import torch

    from foveate.models.quant.pipeline import Plan
    from foveate.models.quant.pipeline import run as quantize
    from foveate.models.quant.targets import random_voxels, sltnet_inputs_target
    from foveate.models.sltnet.export import export_onnx, fold_for_inference

    min_time = 0.5 if quick else 3.0
    repeats = 1 if quick else 3
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        model = _model()
        folded = fold_for_inference(model)
        cfg = model.config
        x = torch.from_numpy(np.random.default_rng(0).normal(size=(1, cfg.bins, cfg.height, cfg.width))
                             .astype(np.float32))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(export_onnx(model), opts, providers=["CPUExecutionProvider"])
        target = sltnet_inputs_target(model, random_voxels(16 if quick else 64, cfg, 1), "seeded SLTNet")
        q8, _ = quantize(target.float_model, target.candidates, Plan(target.recipe(), target.calib_size),
                         kind=target.name, check_inputs=target.candidates[:2])
        sess8 = ort.InferenceSession(q8.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        xn = x.numpy()

        def torch_step(net):
            def step() -> int:
                with torch.no_grad():
                    net(x)
                return 1
            return step

        def ort_step(session):
            def step() -> int:
                session.run(None, {"voxel": xn})
                return 1
            return step

        for fn in (torch_step(model), torch_step(folded), ort_step(sess), ort_step(sess8)):  # warm-up
            fn()
        fps_torch = best_rate(torch_step(model), repeats, min_time)
        fps_folded = best_rate(torch_step(folded), repeats, min_time)
        fps_ort = best_rate(ort_step(sess), repeats, min_time)
        fps_int8 = best_rate(ort_step(sess8), repeats, min_time)
    finally:
        torch.set_num_threads(prev_threads)
    base = "PyTorch FP32 (as trained)"
    return [
        Row(NAME, "PyTorch FP32, as trained, 200x352", round(fps_torch, 2), "frames/s"),
        Row(NAME, "PyTorch FP32, folded, 200x352", round(fps_folded, 2), "frames/s", base, fps_folded / fps_torch),
        Row(NAME, "onnxruntime FP32, folded, 200x352", round(fps_ort, 2), "frames/s", base, fps_ort / fps_torch),
        Row(NAME, "onnxruntime INT8 (foveate quantize), 200x352", round(fps_int8, 2), "frames/s",
            "onnxruntime FP32", fps_int8 / fps_ort, goal=">= 60 frames/s with the INT8 model (quantization issue)"),
    ]
