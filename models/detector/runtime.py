"""The detector behind :class:`foveate.system.inference.Detector`: PyTorch or onnxruntime.

Both runtimes take search-camera images ``(H, W)`` or ``(H, W, 3)`` uint8 (colour is
converted to grey as BGR), resize them to the model's input size when needed, run the
network plus decoding (in the graph for ONNX, the same :class:`Decode` module for
PyTorch) and return :class:`foveate.system.types.Detection` in the image's own pixels,
with the centre covariance (diagonal, px^2) and size variances scaled back too.

``load_detector(path)`` picks the runtime from the file: ``.pt`` checkpoints hold
``{"config", "state_dict", "card"}``; ``.onnx`` files carry the config in their metadata
(key ``foveate.detector.config``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from foveate.models.detector.config import DET_COLUMNS, DetectorConfig
from foveate.system.errors import ConfigError, FoveateError
from foveate.system.model_files import check_shape, load_torch_weights, open_onnx
from foveate.system.types import Detection

ONNX_CONFIG_KEY = "foveate.detector.config"


class _DetectorBase:
    """Pre- and post-processing shared by the runtimes; subclasses implement ``_run``."""

    config: DetectorConfig
    backend: str = ""

    def __init__(self, config: DetectorConfig, score_threshold: float = 0.3) -> None:
        self.config = config
        self.classes = tuple(config.classes)
        self.score_threshold = float(score_threshold)

    def _prepare(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[float, float]]]:
        h, w = self.config.input_size
        batch = np.empty((len(images), 1, h, w), np.float32)
        scales = []
        for i, img in enumerate(images):
            a = np.asarray(img)
            if a.ndim == 3 and a.shape[2] == 3:
                a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)
            elif a.ndim == 3 and a.shape[2] == 1:
                a = a[..., 0]
            if a.ndim != 2 or a.shape[0] < 8 or a.shape[1] < 8:
                raise FoveateError(f"detector input {i}: expected an (H, W) or (H, W, 3) image, got shape {a.shape}")
            if a.dtype != np.uint8:
                raise FoveateError(f"detector input {i}: expected uint8 grey levels, got {a.dtype}")
            if a.shape != (h, w):
                scales.append((a.shape[1] / w, a.shape[0] / h))
                a = cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA)
            else:
                scales.append((1.0, 1.0))
            batch[i, 0] = a * np.float32(1 / 255)
        return batch, scales

    def _run(self, batch: np.ndarray) -> np.ndarray:
        """``(B, 1, H, W)`` float32 -> decoded ``(B, k, 10)`` (columns ``DET_COLUMNS``)."""
        raise NotImplementedError

    def _to_detections(self, rows: np.ndarray, scale: tuple[float, float]) -> list[Detection]:
        sx, sy = scale
        out = []
        for r in rows[rows[:, 0] >= self.score_threshold]:
            score, c, cx, cy, bw, bh, vx, vy, vw, vh = (float(v) for v in r)
            cx, cy, bw, bh = cx * sx, cy * sy, bw * sx, bh * sy
            ci = int(round(c))
            out.append(Detection(
                cls=ci, label=self.classes[ci], score=score,
                box_xyxy=(cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2),
                centre_xy=(cx, cy),
                centre_cov=np.array([[vx * sx * sx, 0.0], [0.0, vy * sy * sy]]),
                size_wh=(bw, bh), size_var=(vw * sx * sx, vh * sy * sy)))
        return out

    def raw_batch(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[tuple[float, float]]]:
        """Decoded top-k rows ``(B, k, 10)`` in model-input pixels, before thresholding, plus per-image scales."""
        batch, scales = self._prepare(images)
        return self._run(batch), scales

    def detect(self, image: np.ndarray) -> list[Detection]:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        if len(images) == 0:
            return []
        rows, scales = self.raw_batch(images)
        return [self._to_detections(r, s) for r, s in zip(rows, scales)]


class TorchDetector(_DetectorBase):
    """PyTorch runtime. ``mc_samples > 1`` adds MC-dropout: the regression head is sampled
    that many times and the spread of the means is added to the predicted variances
    (epistemic + aleatoric, Kendall & Gal 2017)."""

    backend = "torch"

    def __init__(self, net, score_threshold: float = 0.3, mc_samples: int = 1, threads: int | None = None) -> None:
        import torch

        from foveate.models.detector.model import Decode

        super().__init__(net.config, score_threshold)
        self.net = net.eval()
        self.decode = Decode(net.config).eval()
        self.mc_samples = int(mc_samples)
        if threads is not None:
            torch.set_num_threads(threads)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(batch)
        with torch.inference_mode():
            if self.mc_samples <= 1:
                heat, reg = self.net(x)
            else:
                heat, reg = self._mc(x)
            return self.decode(heat, reg).numpy()

    def _mc(self, x):
        import torch

        from foveate.models.detector.model import LOGVAR_MAX, LOGVAR_MIN

        f = self.net.features(x)
        heat = self.net.heat_head(f)
        head = self.net.reg_head
        feats = head[0](f)
        drop = head[1]
        drop.train()
        try:
            samples = torch.stack([head[2](drop(feats)) for _ in range(self.mc_samples)])
        finally:
            drop.eval()
        mu = samples[:, :, :4]
        var = torch.exp(samples[:, :, 4:].clamp(LOGVAR_MIN, LOGVAR_MAX)).mean(0) + mu.var(0)
        return heat, torch.cat([mu.mean(0), torch.log(var)], 1)


class OnnxDetector(_DetectorBase):
    """onnxruntime runtime of an exported model (decoding in the graph)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, score_threshold: float = 0.3, threads: int = 2,
                 config: DetectorConfig | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        _, self.session = open_onnx(path, options=so, what="detector")
        if config is None:
            meta = self.session.get_modelmeta().custom_metadata_map
            if ONNX_CONFIG_KEY not in meta:
                raise ConfigError(f"{path}: no '{ONNX_CONFIG_KEY}' metadata: not a foveate detector export")
            config = DetectorConfig.from_json(meta[ONNX_CONFIG_KEY], str(path))
        super().__init__(config, score_threshold)
        ins, outs = self.session.get_inputs(), self.session.get_outputs()
        if len(ins) != 1 or len(outs) != 1:
            raise ConfigError(f"{path}: {len(ins)} input(s) and {len(outs)} output(s), expected 1 image input and "
                              "1 detections output (an export with decoding)")
        why = f"input_size {list(config.input_size)} in the model's config"
        check_shape(str(path), "input", ins[0].name, ins[0].shape, (None, 1, *config.input_size), why)
        check_shape(str(path), "output", outs[0].name, outs[0].shape, (None, None, len(DET_COLUMNS)),
                    f"one row of {len(DET_COLUMNS)} columns per detection")
        self.input_name = ins[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: batch})[0]


def load_checkpoint(path: str | Path):
    """(DetectorNet, card) from a ``.pt`` checkpoint; clear errors for missing, foreign or unsafe files."""
    from foveate.models.detector.model import DetectorNet

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: detector weights not found")
    obj = load_torch_weights(path, "detector checkpoint")
    if not isinstance(obj, dict) or "config" not in obj or "state_dict" not in obj:
        raise ConfigError(f"{path}: not a detector checkpoint (expected keys 'config' and 'state_dict')")
    config = DetectorConfig.from_json(obj["config"], str(path))
    net = DetectorNet(config)
    try:
        net.load_state_dict(obj["state_dict"])
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{path}: weights do not fit the config: {str(exc).splitlines()[0]}") from None
    return net.eval(), obj.get("card", {})


def load_detector(path: str | Path, score_threshold: float = 0.3, threads: int | None = None, **kw):
    """A runtime for ``path``: :class:`OnnxDetector` for ``.onnx``, :class:`TorchDetector` for ``.pt``."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxDetector(path, score_threshold, threads=threads or 2, **kw)
    if path.suffix in (".pt", ".pth"):
        net, _ = load_checkpoint(path)
        return TorchDetector(net, score_threshold, threads=threads, **kw)
    raise ConfigError(f"{path}: unknown detector file type '{path.suffix}' (expected .pt or .onnx)")


def card_of(path: str | Path) -> dict:
    """The model card stored with a checkpoint (``.pt``) or next to it (``<name>.card.json``)."""
    path = Path(path)
    side = path.with_name(path.stem + ".card.json")
    if side.is_file():
        return json.loads(side.read_text())
    if path.suffix == ".pt":
        return load_checkpoint(path)[1]
    return {}
