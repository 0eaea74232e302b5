"""The search-camera detector: a small anchor-free detector with Gaussian box uncertainty.

Pieces: ``config`` (shape, variance scales), ``data`` (twin views), ``model`` (network and
decoding), ``targets`` (training targets, losses), ``train``, ``evaluate`` (mAP, coverage,
reliability plot), ``export`` (ONNX), ``runtime`` (PyTorch and onnxruntime behind
:class:`foveate.system.inference.Detector`), ``pipeline`` and ``cli`` (``foveate train|eval
detector``). Importing this package does not import torch.

A rig file uses a trained model with::

    models:
      detector: {path: detector.onnx, runtime: onnxruntime, settings: {score_threshold: 0.3}}
"""

from __future__ import annotations

from pathlib import Path


def runtime_file(path: str | Path, runtime: str = "onnxruntime") -> Path:
    """The file ``load_runtime`` reads: the ``.onnx`` for onnxruntime, the ``.pt`` checkpoint for torch."""
    return Path(path).with_suffix(".onnx" if runtime == "onnxruntime" else ".pt")


def load_runtime(path: str | Path, runtime: str = "onnxruntime", **settings):
    """The detector runtime for a rig file's ``models.detector`` entry (see the module docstring).

    ``runtime`` is ``onnxruntime`` or ``torch``; ``settings`` go to the runtime
    (``score_threshold``, ``threads``; ``mc_samples`` for torch). A ``.pt`` checkpoint asked
    for with ``runtime: onnxruntime`` uses the ``.onnx`` file next to it, and vice versa.
    """
    from foveate.models.detector.runtime import OnnxDetector, TorchDetector, load_checkpoint
    from foveate.system.errors import ConfigError

    path = Path(path)
    allowed = {"onnxruntime": {"score_threshold", "threads"}, "torch": {"score_threshold", "threads", "mc_samples"}}
    if runtime not in allowed:
        raise ConfigError(f"detector runtime '{runtime}': expected onnxruntime or torch")
    unknown = set(settings) - allowed[runtime]
    if unknown:
        raise ConfigError(f"models.detector.settings: unknown key '{sorted(unknown)[0]}' "
                          f"(expected one of: {', '.join(sorted(allowed[runtime]))})")
    if runtime == "onnxruntime":
        return OnnxDetector(runtime_file(path, runtime), **settings)
    net, _ = load_checkpoint(runtime_file(path, runtime))
    return TorchDetector(net, **settings)
