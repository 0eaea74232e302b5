"""SLTNet behind the run loop's ``Segmenter`` protocol (:mod:`foveate.system.inference`).

``SLTNetSegmenter(weights, runtime)`` takes an event packet of any sensor size and returns
per-class probabilities ``(K, H, W)`` at that sensor size: events → voxel grid at the sensor
size → normalised → cropped/resized to the model input (:mod:`.preprocess`) → logits →
softmax → resized back. Without ``weights`` it loads the shipped twin weights and refuses
clearly when they are missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from foveate.models.sltnet.preprocess import events_to_input, probabilities_to_sensor
from foveate.models.sltnet.runtime import SLTNetRunner, load_runner
from foveate.system.errors import ConfigError
from foveate.system.types import EventPacket

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
SHIPPED_WEIGHTS = WEIGHTS_DIR / "sltnet_twin.pt"
SHIPPED_CARD = WEIGHTS_DIR / "sltnet_twin.json"


def default_weights() -> Path:
    """The shipped twin weights; ``ConfigError`` naming the training command when absent."""
    if not SHIPPED_WEIGHTS.is_file():
        raise ConfigError(
            f"{SHIPPED_WEIGHTS}: no trained SLTNet weights are shipped yet; train them with "
            "'foveate train sltnet --config twin --data twin' (see docs/sltnet.md) or pass --weights FILE")
    return SHIPPED_WEIGHTS


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis, keepdims=True)).astype(np.float32)


class SLTNetSegmenter:
    """Event-window segmentation with SLTNet; fits ``foveate.system.inference.Segmenter``."""

    def __init__(self, weights: str | Path | None = None, runtime: str = "onnxruntime", crop_bottom: int = 0,
                 threads: int | None = None, runner: SLTNetRunner | None = None) -> None:
        self.runner = runner if runner is not None else load_runner(weights or default_weights(), runtime, threads)
        self.config = self.runner.config
        self.classes: tuple[str, ...] = tuple(self.config.classes)
        self.crop_bottom = int(crop_bottom)

    def input_for(self, events: np.ndarray, sensor_hw: tuple[int, int]) -> np.ndarray:
        """The model input ``[bins, h, w]`` for one window of events on a ``(H, W)`` sensor."""
        if self.crop_bottom >= sensor_hw[0]:
            raise ConfigError(f"crop_bottom {self.crop_bottom} leaves nothing of a {sensor_hw[0]}-row sensor")
        c = self.config
        return events_to_input(events, sensor_hw, c.bins, c.height, c.width, self.crop_bottom)

    def segment_events(self, packet: EventPacket) -> np.ndarray:
        """Per-class probabilities ``(K, H, W)`` float32 at the packet's sensor size."""
        w, h = packet.sensor_size
        prob = softmax(self.runner.logits(self.input_for(packet.events, (h, w)))[0])
        return probabilities_to_sensor(prob, (h, w), self.crop_bottom)
