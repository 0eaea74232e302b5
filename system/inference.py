"""What the run loop needs from models, as Protocols: any runtime (PyTorch, onnxruntime, INT8) fits."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from foveate.system.types import Detection, EventPacket


@runtime_checkable
class Detector(Protocol):
    """Finds targets in search-camera images and reports its uncertainty."""

    classes: tuple[str, ...]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Detections in one image (H, W) or (H, W, 3) uint8, in that image's pixels."""
        ...

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        ...


@runtime_checkable
class Segmenter(Protocol):
    """Semantic segmentation of the wide view (SLTNet on events, or a frame model)."""

    classes: tuple[str, ...]

    def segment_events(self, packet: EventPacket) -> np.ndarray:
        """Per-class probabilities (C, H, W) float32 at the packet's sensor size."""
        ...
