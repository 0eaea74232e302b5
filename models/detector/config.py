"""Detector configuration: network shape and the variance calibration that travels with the weights.

A checkpoint or ONNX file carries its :class:`DetectorConfig` as JSON, so every
file is self-describing (input size, classes, stride, variance scales).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from foveate.system.errors import ConfigError

# Columns of one decoded detection row (the ONNX export's output, the runtimes' raw rows).
DET_COLUMNS = ("score", "cls", "cx", "cy", "w", "h", "var_cx", "var_cy", "var_w", "var_h")

CLASSES = ("human", "vehicle")
INPUT_NORMS = ("standardize", "none")
NORM_STD_FLOOR = 0.02  # grey-level std (of [0, 1] levels) below which a view is not stretched further


@dataclass
class DetectorConfig:
    """Shape of the network and its output calibration.

    ``input_size`` is (height, width) in pixels and must be a multiple of 32;
    the output grid has ``stride`` 8. ``widths`` are the channels of the five
    backbone stages (strides 2, 4, 8, 16, 32); ``neck`` the channels of the
    stride-8 feature map the head reads.

    ``input_norm`` is the network's first step: ``"standardize"`` subtracts each view's
    mean grey level and divides by its standard deviation (floored at ``NORM_STD_FLOOR``),
    so a dark short-exposure view reaches the first convolution with the contrast of a
    bright one; ``"none"`` feeds the [0, 1] grey levels as they are (weights made before
    the option existed, whose files carry no ``input_norm``; the default, because
    standardizing gave no measurable gain: docs/detector.md).

    ``centre_var_scale`` and ``size_var_scale`` multiply the predicted variances;
    they are fitted on a held-out calibration split after training
    (:func:`foveate.models.detector.evaluate.fit_variance_scales`), 1.0 before.
    """

    input_size: tuple[int, int] = (256, 256)
    classes: tuple[str, ...] = CLASSES
    widths: tuple[int, ...] = (16, 24, 48, 64, 96)
    neck: int = 48
    head: int = 64
    dropout: float = 0.1  # before the regression head; MC-dropout samples it at test time
    max_detections: int = 64
    input_norm: str = "none"
    centre_var_scale: float = 1.0
    size_var_scale: float = 1.0
    stride: int = field(default=8, init=False)

    def __post_init__(self) -> None:
        self.input_size = tuple(int(v) for v in self.input_size)
        self.classes = tuple(str(c) for c in self.classes)
        self.widths = tuple(int(v) for v in self.widths)
        h, w = self.input_size
        if len(self.input_size) != 2 or h % 32 or w % 32 or h <= 0 or w <= 0:
            raise ConfigError(f"detector config: input_size {self.input_size}: expected (height, width), multiples of 32")
        if len(self.widths) != 5 or min(self.widths) <= 0:
            raise ConfigError(f"detector config: widths {self.widths}: expected 5 positive channel counts")
        if self.neck <= 0 or self.head <= 0:
            raise ConfigError(f"detector config: neck {self.neck} / head {self.head}: expected positive channel counts")
        if not self.classes:
            raise ConfigError("detector config: classes: expected at least one class name")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"detector config: dropout {self.dropout}: expected 0 <= dropout < 1")
        if self.input_norm not in INPUT_NORMS:
            raise ConfigError(f"detector config: input_norm '{self.input_norm}': expected one of {', '.join(INPUT_NORMS)}")
        if self.centre_var_scale <= 0 or self.size_var_scale <= 0:
            raise ConfigError("detector config: variance scales must be > 0")

    @property
    def grid(self) -> tuple[int, int]:
        return self.input_size[0] // self.stride, self.input_size[1] // self.stride

    def to_json(self) -> str:
        d = asdict(self)
        d.pop("stride")
        return json.dumps(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<memory>") -> "DetectorConfig":
        known = {f.name for f in fields(cls) if f.init}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{source}: detector config: unknown key '{sorted(unknown)[0]}' "
                              f"(expected one of: {', '.join(sorted(known))})")
        d = dict(d)
        d.setdefault("input_norm", "none")  # written before the option existed: trained on raw levels
        return cls(**d)

    @classmethod
    def from_json(cls, text: str, source: str = "<memory>") -> "DetectorConfig":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: detector config is not valid JSON: {exc.msg}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: detector config: expected a JSON object")
        return cls.from_dict(d, source)
