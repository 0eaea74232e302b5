"""The two models as quantization targets: float ONNX, calibration candidates, accuracy.

Each target reuses its model's own code: SLTNet's ``export_onnx``, twin dataset and
``train.evaluate`` (mIoU over one confusion matrix); the detector's shipped ONNX export,
twin view splits (``calib`` for calibration, ``test`` for accuracy) and ``evaluate.mean_ap``.
Nothing here re-implements a metric.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from foveate.system.errors import ConfigError


@dataclass
class Target:
    """``float_model`` (serialised ONNX), ``candidates`` (calibration inputs ``[N, ...]`` float32),
    ``accuracy(model_bytes, inputs=None) -> dict`` with a ``score`` key in points (0..100), and
    ``inputs`` (the evaluation inputs, for corruption and agreement tests)."""

    name: str
    metric: str
    float_model: bytes
    candidates: np.ndarray
    eval_inputs: np.ndarray
    accuracy: Callable[[bytes, np.ndarray | None], dict]
    source: str
    # QuantRecipe fields this model quantizes with unless the user says otherwise (see SLTNET_RECIPE)
    recipe_defaults: dict | None = None
    # calibration samples chosen unless the user says otherwise: SLTNet's INT8 mIoU drop on the
    # twin was 0.74 points with 64 samples and 0.34 with 200 (2026-11-26, docs/deployment.md)
    calib_size: int = 64

    def recipe(self, **choices):
        """The :class:`QuantRecipe` for this model: its defaults, overridden by ``choices`` (None = default)."""
        from foveate.models.quant.ptq import QuantRecipe

        return QuantRecipe(**{**(self.recipe_defaults or {}), **{k: v for k, v in choices.items() if v is not None}})


# SLTNet's INT8 recipe (docs/deployment.md, "SLTNet speed-up"): convs only (the spike layers fold into
# their requantisation, quant/spikes.py); the gate convs on pooled vectors (ECA, FE channel gate: < 20k
# MACs) and the 5-channel first conv stay float, where onnxruntime's float kernels beat the integer ones.
SLTNET_FIRST_CONV = "/stem/stem.0/conv/Conv"
SLTNET_CALIB_SIZE = 200
SLTNET_RECIPE = {"op_types": ("Conv",), "min_conv_macs": 20_000, "exclude": (SLTNET_FIRST_CONV,)}


def _session_bytes(model: bytes, threads: int):
    from foveate.models.quant.ptq import session

    return session(model, threads)


# ----------------------------------------------------------------------------- detector
def detector_target(weights: str | Path | None = None, calib_views: int | None = None, test_views: int | None = None,
                    threads: int = 2, progress: bool = False) -> Target:
    """The shipped detector (``models/weights/detector.onnx``): calib split as candidates, test split scored."""
    from foveate.models.detector.data import load_views
    from foveate.models.detector.evaluate import Predictions, mean_ap
    from foveate.models.detector.pipeline import EVAL_SCORE_THRESHOLD, shipped_weights, spec_from_dict
    from foveate.models.detector.runtime import OnnxDetector, card_of

    path = Path(weights) if weights else shipped_weights(".onnx")
    if not path.is_file():
        raise ConfigError(f"{path}: detector ONNX weights not found (train them: foveate train detector --ship)")
    card = card_of(path)
    specs = card.get("data", {})
    if "calib_spec" not in specs or "test_spec" not in specs:
        raise ConfigError(f"{path}: its card names no calib/test view sets (data.calib_spec, data.test_spec)")
    cs, ts = spec_from_dict(specs["calib_spec"]), spec_from_dict(specs["test_spec"])
    if calib_views:
        cs = replace(cs, n_views=int(calib_views))
    if test_views:
        ts = replace(ts, n_views=int(test_views))
    calib, test = load_views(cs, progress=progress), load_views(ts, progress=progress)
    to_input = (lambda imgs: (imgs.astype(np.float32) / np.float32(255))[:, None])
    cand, ev = to_input(calib.images), to_input(test.images)

    def accuracy(model: bytes, inputs: np.ndarray | None = None) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "m.onnx"
            p.write_bytes(model)
            det = OnnxDetector(p, EVAL_SCORE_THRESHOLD, threads=threads)
        views = test
        if inputs is not None:  # corrupted copies of the test images, same ground truth
            views = replace(test, images=np.clip(np.rint(inputs[:, 0] * 255), 0, 255).astype(np.uint8))
        m = mean_ap(Predictions.collect(det, views), views, len(det.classes))
        return {"score": 100.0 * m["map50"], "map50": m["map50"], "map50_95": m["map50_95"]}

    return Target("detector", "mAP@0.5", path.read_bytes(), cand, ev, accuracy, str(path))


# ----------------------------------------------------------------------------- SLTNet
def sltnet_target(weights: str | Path | None = None, data: str | Path | None = None, threads: int = 2,
                  twin_seed: int | None = None, progress: bool = False) -> Target:
    """SLTNet from a checkpoint: twin train windows as candidates, twin val windows scored (mIoU).

    ``data`` is a twin cache folder (``.cache/sltnet/twin/<key>``, with ``train/`` and ``val/``);
    by default the folder named in the checkpoint's card (its data spec), built if missing.
    """
    from foveate.models.sltnet.export import export_onnx
    from foveate.models.sltnet.runtime import load_model
    from foveate.models.sltnet.train import evaluate
    from foveate.models.sltnet.twin_data import TwinDataset

    path = Path(weights) if weights else SLTNET_WEIGHTS
    model = load_model(path)
    cfg = model.config
    folder = Path(data) if data else _twin_folder_from_card(model, cfg, path, progress)
    train, val = TwinDataset(folder, "train", cfg), TwinDataset(folder, "val", cfg)
    cand = train.voxels.astype(np.float32)
    ev = val.voxels.astype(np.float32)
    names = tuple(cfg.classes)

    def accuracy(model_bytes: bytes, inputs: np.ndarray | None = None) -> dict:
        sess = _session_bytes(model_bytes, threads)
        xname = sess.get_inputs()[0].name
        x = ev if inputs is None else inputs

        class _DS:  # the val labels with (possibly corrupted) inputs
            def __len__(self):
                return len(val)

            def __getitem__(self, i):
                return x[i], val.labels[i]

        def predict(v: np.ndarray) -> np.ndarray:
            return np.concatenate([sess.run(["logits"], {xname: v[i:i + 1]})[0] for i in range(len(v))]) \
                .argmax(1).astype(np.uint8)

        m = evaluate(predict, _DS(), names)
        return {"score": 100.0 * m["miou"], "miou": m["miou"], "pixel_accuracy": m.get("pixel_accuracy")}

    return Target("sltnet", "mIoU", export_onnx(model), cand, ev, accuracy, str(path), recipe_defaults=SLTNET_RECIPE,
                  calib_size=SLTNET_CALIB_SIZE)


SLTNET_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "sltnet_twin.pt"


def sltnet_inputs_target(model, candidates: np.ndarray, source: str) -> Target:
    """SLTNet with given calibration inputs and no accuracy (``foveate quantize ... --calib FILE.npy``;
    the latency-only bench on a seeded model). The first four candidates check the fused kernels."""
    from foveate.models.sltnet.export import export_onnx

    cfg = model.config
    want = (cfg.bins, cfg.height, cfg.width)
    if candidates.ndim != 4 or candidates.shape[1:] != want:
        raise ConfigError(f"{source}: calibration inputs of shape {candidates.shape[1:]}, the model wants {want}")
    return Target("sltnet", "mIoU", export_onnx(model), candidates.astype(np.float32), candidates[:4].astype(np.float32),
                  None, source, recipe_defaults=SLTNET_RECIPE)


def seeded_sltnet(config="twin", seed: int = 0):
    """An untrained SLTNet with realistic firing: random BN affines and the exact BN statistics of one
    random batch (every LIF sees unit-scale inputs). For pipeline tests and latency without weights."""
    import torch
    from torch import nn

    from foveate.models.sltnet.model import SLTNet

    torch.manual_seed(seed)
    model = SLTNet(config)
    cfg = model.config
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.uniform_(0.6, 1.6)
            bn.bias.uniform_(-0.3, 0.4)
            bn.momentum = None  # cumulative average: one pass gives the batch's exact statistics
            bn.reset_running_stats()
        model.train()
        model(torch.from_numpy(random_voxels(4, cfg, seed)))
        for bn in bns:
            bn.momentum = 0.1
    return model.eval()


def random_voxels(n: int, cfg, seed: int = 0, density: float = 0.2) -> np.ndarray:
    """Voxel-grid-like inputs ``[n, bins, H, W]``: a ``density`` share of voxels non-zero, standard normal."""
    rng = np.random.default_rng(seed)
    shape = (n, cfg.bins, cfg.height, cfg.width)
    return (rng.normal(size=shape) * (rng.random(shape) < density)).astype(np.float32)


def _twin_folder_from_card(model, cfg, path: Path, progress: bool) -> Path:
    from foveate.models.sltnet.twin_data import DEFAULT_CACHE, TwinDataSpec, build_twin_cache

    card = getattr(model, "card", {}) or {}
    spec_d = (card.get("training") or {}).get("twin_spec")
    if not isinstance(spec_d, dict):
        raise ConfigError(f"{path}: its card names no twin data spec; pass --data FOLDER (a twin cache folder)")
    spec = TwinDataSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec_d.items()})
    return build_twin_cache(spec, cfg, DEFAULT_CACHE, progress, workers=2)


def model_bytes(model: onnx.ModelProto | bytes) -> bytes:
    return model if isinstance(model, bytes) else model.SerializeToString()


def card_json(d: dict) -> str:
    return json.dumps(d, indent=1, default=float)
