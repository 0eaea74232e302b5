"""One interface to run SLTNet: PyTorch or onnxruntime, same inputs, same outputs.

A :class:`SLTNetRunner` takes model-ready voxel grids ``[B, bins, H, W]`` (float32, the
config's size) and returns logits ``[B, K, H, W]`` or label maps ``[B, H, W]`` (uint8).
Checkpoints (``.pt``) hold ``{"config", "state_dict", "card"}``; ONNX files carry the
config in their metadata, so either kind of file is self-describing.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from foveate.models.sltnet.config import SLTNetConfig
from foveate.system.errors import ConfigError


class SLTNetRunner(ABC):
    config: SLTNetConfig
    backend: str

    def _check(self, voxel: np.ndarray) -> np.ndarray:
        v = np.asarray(voxel, dtype=np.float32)
        if v.ndim == 3:
            v = v[None]
        want = (self.config.bins, self.config.height, self.config.width)
        if v.ndim != 4 or v.shape[1:] != want:
            raise ValueError(f"voxel grid shape {v.shape}: expected [B, {want[0]}, {want[1]}, {want[2]}]")
        return np.ascontiguousarray(v)

    def logits(self, voxel: np.ndarray) -> np.ndarray:
        """Class scores ``[B, K, H, W]`` for voxel grids ``[B, bins, H, W]`` (or one ``[bins, H, W]``)."""
        return self._logits(self._check(voxel))

    def predict(self, voxel: np.ndarray) -> np.ndarray:
        """Label maps ``[B, H, W]`` uint8."""
        return self.logits(voxel).argmax(1).astype(np.uint8)

    @abstractmethod
    def _logits(self, v: np.ndarray) -> np.ndarray: ...


class TorchRunner(SLTNetRunner):
    """PyTorch inference (eval mode, no gradients); ``fold=True`` runs the folded inference form."""

    backend = "torch"

    def __init__(self, model, fold: bool = False) -> None:
        import torch

        from foveate.models.sltnet.export import fold_for_inference

        self._torch = torch
        self.model = fold_for_inference(model) if fold else model.eval()
        self.config = model.config

    def _logits(self, v: np.ndarray) -> np.ndarray:
        with self._torch.no_grad():
            return self.model(self._torch.from_numpy(v)).numpy()


class OnnxRunner(SLTNetRunner):
    """onnxruntime inference of a model written by :func:`foveate.models.sltnet.export.export_onnx`."""

    backend = "onnxruntime"

    def __init__(self, model: str | Path | bytes, threads: int | None = None) -> None:
        import onnxruntime as ort

        from foveate.models.sltnet.export import CONFIG_METADATA_KEY
        from foveate.system.model_files import check_shape, open_onnx

        name = "<bytes>" if isinstance(model, bytes) else str(model)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        proto, self.session = open_onnx(model, name, opts, what="SLTNet model")
        meta = {p.key: p.value for p in proto.metadata_props}
        if CONFIG_METADATA_KEY not in meta:
            raise ConfigError(f"{name}: ONNX model has no '{CONFIG_METADATA_KEY}' metadata (not an SLTNet export)")
        try:
            cfg_dict = json.loads(meta[CONFIG_METADATA_KEY])
        except ValueError as exc:
            raise ConfigError(f"{name}: metadata '{CONFIG_METADATA_KEY}' is not valid JSON: {exc}") from None
        self.config = SLTNetConfig.from_dict(cfg_dict, name)
        c = self.config
        ins = self.session.get_inputs()
        outs = {o.name: o for o in self.session.get_outputs()}
        if len(ins) != 1 or "logits" not in outs:
            raise ConfigError(f"{name}: expected one input (voxel grid) and an output 'logits', got inputs "
                              f"{[i.name for i in ins]} and outputs {sorted(outs)}")
        check_shape(name, "input", ins[0].name, ins[0].shape, (None, c.bins, c.height, c.width),
                    f"bins, height, width {c.bins}, {c.height}, {c.width} in the model's config")
        check_shape(name, "output", "logits", outs["logits"].shape, (None, len(c.classes), None, None),
                    f"{len(c.classes)} classes in the model's config")
        self._input = ins[0].name

    def _logits(self, v: np.ndarray) -> np.ndarray:
        outs = [self.session.run(["logits"], {self._input: v[i:i + 1]})[0] for i in range(v.shape[0])]
        return np.concatenate(outs, 0)


def save_checkpoint(path: str | Path, model, card: dict | None = None, **extra) -> None:
    """Write ``{"config", "state_dict", "card", **extra}`` with torch.save."""
    import torch

    torch.save({"config": model.config.as_dict(), "state_dict": model.state_dict(), "card": card or {}, **extra},
               str(path))


def load_model(path: str | Path):
    """The SLTNet stored in a checkpoint written by :func:`save_checkpoint` (eval mode)."""
    from foveate.models.sltnet.model import SLTNet
    from foveate.system.model_files import load_torch_weights

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: weights file not found")
    ckpt = load_torch_weights(p, "SLTNet checkpoint")
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise ConfigError(f"{p}: not an SLTNet checkpoint (expected keys 'config' and 'state_dict')")
    model = SLTNet(SLTNetConfig.from_dict(ckpt["config"], str(p)))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        raise ConfigError(f"{p}: weights do not fit the SLTNet config: {str(exc).splitlines()[0]}") from None
    model.card = ckpt.get("card", {})
    return model.eval()


def load_runner(path: str | Path, backend: str = "torch", threads: int | None = None) -> SLTNetRunner:
    """A runner from a ``.pt`` checkpoint (torch, or exported on the fly for onnxruntime) or an ``.onnx`` file."""
    p = Path(path)
    if backend not in ("torch", "onnxruntime"):
        raise ConfigError(f"unknown SLTNet backend '{backend}' (expected torch or onnxruntime)")
    if p.suffix == ".onnx":
        if backend == "torch":
            raise ConfigError(f"{p}: an ONNX file runs only with the onnxruntime backend")
        return OnnxRunner(p, threads)
    model = load_model(p)
    if backend == "torch":
        if threads:
            import torch

            torch.set_num_threads(threads)
        return TorchRunner(model)
    from foveate.models.sltnet.export import export_onnx

    return OnnxRunner(export_onnx(model), threads)
