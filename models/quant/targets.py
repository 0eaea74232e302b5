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
    # op types to quantize by default (None: all onnxruntime supports). SLTNet: convs and the
    # reshapes around them only; Q/DQ pairs around its many element-wise nodes cost more than
    # they save (measured: 1.11x over FP32 with these, 1.00x with all ops; docs/deployment.md)
    op_types: tuple[str, ...] | None = None


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

    path = Path(weights) if weights else Path(__file__).resolve().parents[1] / "weights" / "sltnet_twin.pt"
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

    return Target("sltnet", "mIoU", export_onnx(model), cand, ev, accuracy, str(path),
                  op_types=("Conv", "ConvTranspose", "Reshape"))


def _twin_folder_from_card(model, cfg, path: Path, progress: bool) -> Path:
    from foveate.models.sltnet.twin_data import DEFAULT_CACHE, TwinDataSpec, build_twin_cache

    card = getattr(model, "card", {}) or {}
    spec_d = (card.get("training") or {}).get("twin_spec")
    if not isinstance(spec_d, dict):
        raise ConfigError(f"{path}: its card names no twin data spec; pass --data FOLDER (a twin cache folder)")
    spec = TwinDataSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec_d.items()})
    return build_twin_cache(spec, cfg, DEFAULT_CACHE, progress)


def model_bytes(model: onnx.ModelProto | bytes) -> bytes:
    return model if isinstance(model, bytes) else model.SerializeToString()


def card_json(d: dict) -> str:
    return json.dumps(d, indent=1, default=float)
