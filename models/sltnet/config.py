"""SLTNet configurations: dataset, classes, input size, voxel bins, time steps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from foveate.system.errors import ConfigError

DDD17_CLASSES = ("flat", "construction+sky", "object", "nature", "human", "vehicle")
DSEC_CLASSES = ("background", "building", "fence", "person", "pole", "road", "sidewalk",
                "vegetation", "car", "wall", "traffic-sign")
IGNORE_INDEX = 255


@dataclass(frozen=True)
class SLTNetConfig:
    """What a model instance is built for.

    ``height``/``width`` is the network input (multiples of 8: the encoder halves the size
    four times and its skips must line up); ``bins`` is the voxel-grid depth, used as the
    input channels; ``time_steps`` repeats the input over T steps (T=1 in the paper).
    ``full_res_skip`` (not in the paper; off in every named config) adds the stem's
    full-resolution spikes, through a 1x1 conv and BN, to the decoder's output before its last
    LIF, so the classifier does not rest on half-resolution features alone.
    """

    name: str
    classes: tuple[str, ...]
    height: int
    width: int
    bins: int = 5
    time_steps: int = 1
    full_res_skip: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_(self, **changes) -> "SLTNetConfig":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "SLTNetConfig":
        try:
            return cls(name=str(d["name"]), classes=tuple(d["classes"]), height=int(d["height"]),
                       width=int(d["width"]), bins=int(d.get("bins", 5)), time_steps=int(d.get("time_steps", 1)),
                       full_res_skip=_flag(d.get("full_res_skip", False), "full_res_skip"))
        except KeyError as exc:
            raise ConfigError(f"{source}: missing key {exc.args[0]!r} in the SLTNet config") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: invalid SLTNet config: {exc}") from None


def _flag(value, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


CONFIGS = {
    # DDD17 (ESS layout): 260x346 sensor, resized to 260x352, bottom 60 rows dropped.
    "ddd17": SLTNetConfig("ddd17", DDD17_CLASSES, 200, 352),
    # DSEC-Semantic: 480x640 rectified, bottom 40 rows dropped.
    "dsec": SLTNetConfig("dsec", DSEC_CLASSES, 440, 640),
    # The digital twin's wide event camera (320x240): DDD17's six classes at half the sensor
    # size, which keeps the aspect ratio and lets the model train on 2 CPU cores in < 2 h.
    "twin": SLTNetConfig("twin", DDD17_CLASSES, 120, 160),
}


def get_config(name: str) -> SLTNetConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigError(f"unknown SLTNet config '{name}' (expected one of: {', '.join(CONFIGS)})") from None
