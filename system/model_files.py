"""Model files named by users (rig files, ``--weights``): checksum, ONNX opset and tensor shapes.

Every check fails with one ``ConfigError`` line naming the file and what was expected:

* :func:`verify_sha256` -- the file's SHA-256 against the one a rig file records
  (``models.<name>.sha256``), so a changed or tampered model is refused before it is loaded;
* :func:`open_onnx` -- an ONNX file (or its bytes) parsed, its ``ai.onnx`` opset checked against
  what the installed onnxruntime runs, and an inference session created (onnxruntime's own
  multi-line errors reduced to one line);
* :func:`check_shape` -- a model input's or output's shape against what the model's own
  config says (symbolic dimensions such as ``batch`` match anything);
* :func:`load_torch_weights` -- a ``.pt`` checkpoint read with ``weights_only=True`` (tensors,
  plain containers and numpy scalars only), so a tampered checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Sequence

from foveate.system.errors import ConfigError

MIN_OPSET = 7  # onnxruntime's oldest supported ai.onnx opset
_ORT_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_ORT_SOURCE = re.compile(r"^/\S+\.(?:h|cc|cpp):\d+ .*?\)\s+")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: str | Path, expected: str, where: str) -> None:
    """Refuse ``path`` unless its SHA-256 is ``expected`` (``where`` names the key that records it)."""
    path = Path(path)
    try:
        got = file_sha256(path)
    except FileNotFoundError:
        raise ConfigError(f"{where}: model file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from None
    if got != expected.lower():
        raise ConfigError(f"{where}: {path} has sha256 {got}, expected {expected.lower()} "
                          "(the file was changed or replaced; check it, then record its new sha256)")


def max_opset() -> int:
    """The newest ``ai.onnx`` opset the installed onnx/onnxruntime pair runs."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def ort_message(exc: BaseException) -> str:
    """onnxruntime's exception text as one readable line (no error codes, no C++ source locations)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = _ORT_SOURCE.sub("", _ORT_PREFIX.sub("", text))
    return text[:300]


def open_onnx(src: str | Path | bytes, name: str | None = None, options=None, what: str = "model"):
    """``(proto, session)`` of an ONNX file or its bytes, or one ``ConfigError`` line saying why not.

    ``name`` is used in messages (default: the path). The ``ai.onnx`` opset must lie in
    ``MIN_OPSET .. max_opset()``; onnxruntime's own load errors are reduced to one line.
    """
    import onnx
    import onnxruntime as ort

    if isinstance(src, (bytes, bytearray)):
        data, name = bytes(src), name or "<bytes>"
    else:
        path = Path(src)
        name = name or str(path)
        if not path.is_file():
            raise ConfigError(f"{name}: {what} file not found" + (" (a folder)" if path.is_dir() else ""))
        data = path.read_bytes()
    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeWarning, ...
        raise ConfigError(f"{name}: not an ONNX {what} (protobuf parsing failed: {type(exc).__name__})") from None
    if not proto.graph.node and not proto.graph.input:
        raise ConfigError(f"{name}: not an ONNX {what} (no graph)")
    hi = max_opset()
    for op in proto.opset_import:
        if op.domain in ("", "ai.onnx") and not MIN_OPSET <= op.version <= hi:
            raise ConfigError(f"{name}: ONNX opset {op.version} (domain ai.onnx) is not supported: onnxruntime "
                              f"{ort.__version__} runs opsets {MIN_OPSET}..{hi}; re-export the {what} with an "
                              "opset in that range")
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ConfigError(f"{name}: cannot load ONNX {what}: {ort_message(exc)}") from None
    return proto, session


def _dims(shape) -> list:
    return [d if isinstance(d, int) and d >= 0 else None for d in (shape or [])]


def check_shape(name: str, kind: str, tensor: str, shape: Sequence, expected: Sequence, why: str) -> None:
    """Refuse a tensor whose shape differs from ``expected`` (``None`` entries match any size).

    ``kind`` is ``input`` or ``output``; ``why`` says where the expectation comes from.
    """
    got = _dims(shape)
    ok = len(got) == len(expected) and all(g is None or e is None or g == e for g, e in zip(got, expected))
    if not ok:
        show = lambda s: "[" + ", ".join("?" if d is None else str(d) for d in s) + "]"  # noqa: E731
        raise ConfigError(f"{name}: {kind} '{tensor}' has shape {show(got)}, expected {show(expected)} ({why})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def load_torch_weights(path: str | Path, what: str = "checkpoint"):
    """The object in a ``.pt`` file, unpickled with ``weights_only=True`` (numpy scalars and dtypes
    allowed, as model cards hold them); ``ConfigError`` on a missing, damaged or code-carrying file."""
    import numpy as np
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    allowed = [np._core.multiarray.scalar, np.dtype] + [type(np.dtype(t)) for t in
                                                         ("float64", "float32", "float16", "int64", "int32", "bool")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad or unsafe file
        raise ConfigError(f"{path}: cannot read {what}: {_first_line(exc)}") from None
