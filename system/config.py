"""Rig configuration: one YAML file per rig, validated with clear one-line errors.

Every error names the file, the key path (``devices.galvo.settings.limits_deg``)
and what was expected. The embedded default rig (all simulated) ships as
package data in ``foveate.hardware`` (``rigs/sim_default.yaml``).
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from foveate.system.errors import ConfigError
from foveate.system.registry import KINDS, resolve_backend

DEFAULT_RIG_NAME = "sim_default.yaml"
MAX_YAML_BYTES = 16 << 20  # rig, calibration and capture files are small; anything larger is the wrong file

Role = Literal[
    "wide_camera",  # wide-angle frame camera
    "wide_events",  # wide-angle event camera
    "search_camera",  # narrow high-speed camera behind the search galvo
    "search_galvo",  # galvo that steers the search camera
    "scan_camera",  # light-section camera behind the view-switching galvo
    "scan_galvo",  # galvo pair that switches the light-section camera's view
    "laser",  # line laser of the light-section module
    "laser_galvo",  # galvo that sweeps the laser sheet
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceConfig(_Strict):
    kind: Literal["frame_camera", "event_camera", "galvo", "line_laser"]
    backend: str = Field(description="'sim', 'replay', a real backend name, or 'package.module:Class'")
    role: Role | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


def resolve_model_path(path: Path, rig_dir: Path) -> Path:
    """Where a rig file's model ``path`` points: ``package:relative/file`` is a file shipped inside an
    installed package (``foveate.models:weights/detector.onnx``, wherever the rig file lies); other paths
    are absolute or relative to the rig file's folder."""
    text = str(path)
    package, sep, rel = text.partition(":")
    if sep and package and rel and "/" not in package and package.replace(".", "").replace("_", "").isalnum():
        import importlib.util

        try:
            spec = importlib.util.find_spec(package)
        except ImportError:
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"model path '{text}': no installed package '{package}' to take '{rel}' from")
        return Path(list(spec.submodule_search_locations)[0]) / rel
    return path if path.is_absolute() else rig_dir / path


class ModelRef(_Strict):
    path: Path | None = Field(default=None, description="model file: absolute, relative to the rig file, or "
                              "'package:relative/file' inside an installed package")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    runtime: Literal["onnxruntime", "torch"] = "onnxruntime"
    # A model implemented in Python instead of a file (e.g. a test double on the twin).
    backend: str | None = Field(default=None, description="'package.module:Class' instead of a model file")
    settings: dict[str, Any] = Field(default_factory=dict)
    # What to use while the file of 'path' does not exist (weights not shipped yet); the run summary says so.
    fallback: "ModelRef | None" = Field(default=None, description="model used when the file of 'path' is missing")

    @model_validator(mode="after")
    def _one_source(self) -> "ModelRef":
        if (self.path is None) == (self.backend is None):
            raise ValueError("give exactly one of 'path' (a model file) or 'backend' ('package.module:Class')")
        if self.fallback is not None and self.path is None:
            raise ValueError("'fallback' goes with 'path' (it replaces a missing model file)")
        return self


class ComponentRef(_Strict):
    """A calibration provided by code instead of a file (e.g. the twin's true geometry)."""

    backend: str = Field(description="'package.module:Class'")
    settings: dict[str, Any] = Field(default_factory=dict)


Box = tuple[tuple[float, float], tuple[float, float]]


class SafetyConfig(_Strict):
    """The rig's safety envelope (docs/reliability.md): enforced by the host, checked again by controllers."""

    laser_keep_in_deg: Box | None = Field(
        default=None, description="commands (x, y mechanical deg) of the laser's galvo where the laser may be on; "
        "None: anywhere within that galvo's limits")
    laser_galvo: str | None = Field(default=None, description="device whose mirror aims the laser (default: the "
                                    "laser_galvo role, else the search_galvo role)")
    max_slew_deg_s: float | None = Field(default=None, gt=0, description="fastest a galvo may be configured to slew; "
                                         "foveate run refuses a rig whose galvo is configured faster")

    @model_validator(mode="after")
    def _box_ordered(self) -> "SafetyConfig":
        box = self.laser_keep_in_deg
        if box is not None and not all(lo < hi for lo, hi in box):
            raise ValueError(f"laser_keep_in_deg must be [[x_min, x_max], [y_min, y_max]] with min < max, got {box}")
        return self


class ReliabilityConfig(_Strict):
    """How the search loop notices device faults and recovers (docs/reliability.md)."""

    read_timeout_s: float = Field(0.1, gt=0, le=10, description="a camera read taking longer is a stall")
    late_frame_s: float = Field(0.02, gt=0, description="a frame delivered this long after its readout is late; "
                                "late search frames are dropped (the mirror has moved on)")
    stall_reconnect_after: int = Field(3, ge=1, description="read timeouts in a row before a camera is reconnected")
    reconnect_initial_s: float = Field(0.02, gt=0, description="first wait before reconnecting a failed device")
    reconnect_max_s: float = Field(0.25, gt=0, description="longest wait between reconnection attempts")
    reconnect_factor: float = Field(2.0, ge=1, description="back-off: each failed attempt multiplies the wait")
    event_burst_factor: float = Field(4.0, gt=1, description="an event packet this many times the running mean "
                                      "rate is a burst; its events beyond that rate are dropped (counted)")
    event_gap_min_events: int = Field(20, ge=1, description="an empty packet where at least this many events were "
                                      "expected is a gap; the map keeps its last segmentation")
    idle_s: float = Field(0.001, gt=0, description="loop pause while the search galvo or camera is down")


class RigConfig(_Strict):
    name: str
    description: str = ""
    clock: Literal["auto", "realtime", "simulated"] = "auto"
    sim: dict[str, Any] = Field(default_factory=dict, description="settings of the digital twin, for sim backends")
    devices: dict[str, DeviceConfig]
    calibration: dict[str, Path | ComponentRef] = Field(default_factory=dict)
    models: dict[str, ModelRef] = Field(default_factory=dict)
    search: dict[str, Any] = Field(default_factory=dict, description="search-loop settings (foveate.system.search.settings)")
    safety: SafetyConfig = SafetyConfig()
    reliability: ReliabilityConfig = ReliabilityConfig()
    # Where the file came from; set by load_rig, not read from YAML.
    source: str = Field(default="<memory>", exclude=True)
    rig_dir: Path = Field(default=Path("."), exclude=True)

    def device_by_role(self, role: str) -> str | None:
        for name, dev in self.devices.items():
            if dev.role == role:
                return name
        return None

    @property
    def simulated(self) -> bool:
        """True when the rig's clock is simulated (fast mode)."""
        if self.clock != "auto":
            return self.clock == "simulated"
        return all(d.backend in ("sim", "replay") for d in self.devices.values())


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """Field names of the model found at ``loc`` (the offending key's parent)."""
    current: Any = model
    skip_key = False
    for part in loc[:-1]:
        if skip_key:  # a free dict key such as a device name
            skip_key = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        if getattr(ann, "__origin__", None) is dict:
            current = ann.__args__[-1]
            skip_key = True
        else:
            current = ann
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [k for k, f in current.model_fields.items() if not f.exclude]
    return None


def _key_text(part) -> str:
    """A key path element on one line (a key with control characters is shown quoted)."""
    text = str(part)
    return text if text.isprintable() and len(text) <= 80 else _short_repr(text, 80)


def _short_repr(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_validation_error(source: str, exc: ValidationError, model: type[BaseModel], prefix: tuple = ()) -> str:
    """One line: ``file: key.path: problem (expected ...)`` for the first error."""
    # A typo shows up as an unknown key *and* a missing one: report the typo.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    err = errors[0]
    loc = prefix + tuple(err["loc"])
    key = ".".join(_key_text(p) for p in loc) or "<top level>"
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, tuple(err["loc"]))
        msg = f"unknown key {_short_repr(str(loc[-1]), 80)}"
        if allowed:
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            msg += f" ({hint}expected one of: {', '.join(allowed)})"
    elif err["type"] == "missing":
        msg = "required key is missing"
    else:
        got = err.get("input")
        got_txt = f" (got {_short_repr(got)})" if got is not None and not isinstance(got, dict) else ""
        msg = f"{err['msg']}{got_txt}"
    more = f" [and {len(errors) - 1} more error(s)]" if len(errors) > 1 else ""
    return f"{source}: {key}: {msg}{more}"


def read_yaml(path: str | Path, what: str = "rig file") -> Any:
    """Parse a YAML file; ``ConfigError`` naming the file (and line, column) on failure.

    The one YAML reader for user files (rigs, calibrations, captures).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a {what} (YAML)")
    if path.exists() and not path.is_file():  # a pipe or device would block or never end
        raise ConfigError(f"{path}: not a regular file, expected a {what} (YAML)")
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {size} bytes; a {what} is at most {MAX_YAML_BYTES} bytes")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: byte offset {exc.start}: not UTF-8 text (a {what} is YAML)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: {where}invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None


def default_rig_path() -> Path:
    return Path(str(resources.files("foveate.hardware") / "rigs" / DEFAULT_RIG_NAME))


def parse_rig(data: Any, source: str = "<memory>", rig_dir: Path = Path(".")) -> RigConfig:
    """Validate a rig mapping (already parsed YAML); checks files and backend settings too."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        cfg = RigConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc, RigConfig)) from None
    cfg.source = source
    cfg.rig_dir = rig_dir
    for key, path in cfg.calibration.items():
        if not isinstance(path, Path):
            continue
        full = path if path.is_absolute() else rig_dir / path
        if not full.is_file():
            raise ConfigError(f"{source}: calibration.{key}: file not found: {full}")
    for key, ref in cfg.models.items():
        where = f"models.{key}"
        while ref is not None and ref.path is not None:
            full = resolve_model_path(ref.path, rig_dir)
            if full.is_file():
                break
            if ref.fallback is None:
                raise ConfigError(f"{source}: {where}.path: file not found: {full}")
            ref, where = ref.fallback, f"{where}.fallback"
    roles: dict[str, str] = {}
    for name, dev in cfg.devices.items():
        where = f"{source}: devices.{name}.backend"
        cls = resolve_backend(dev.kind, dev.backend, where)
        try:
            cls.Settings.model_validate(dev.settings)
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(source, exc, cls.Settings, prefix=("devices", name, "settings"))
            ) from None
        if dev.role:
            if dev.role in roles:
                raise ConfigError(f"{source}: devices.{name}.role: role '{dev.role}' already taken by '{roles[dev.role]}'")
            roles[dev.role] = name
    assert set(KINDS) >= {d.kind for d in cfg.devices.values()}
    return cfg


def load_rig(path: str | Path | None = None) -> RigConfig:
    """Load and validate a rig file; ``None`` loads the embedded default (all simulated)."""
    p = default_rig_path() if path is None else Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"{p}: is a directory, expected a rig YAML file")
    data = read_yaml(p)
    return parse_rig(data, source=str(p), rig_dir=p.resolve().parent)
