"""Error types. Every user mistake surfaces as a FoveateError with a one-line message."""


class FoveateError(Exception):
    """Base class: the CLI prints these as one line, without a traceback."""


class ConfigError(FoveateError):
    """A rig, calibration or model file is invalid (message names file and key)."""


class DeviceError(FoveateError):
    """A device failed or was used wrongly."""


class DeviceNotOpenError(DeviceError):
    """A device method was called before ``open()`` or after ``close()``."""


class DeviceTimeoutError(DeviceError, TimeoutError):
    """A device did not answer or settle within the allowed time."""


class LimitError(DeviceError, ValueError):
    """A command outside the device's configured limits was refused (never clipped)."""


class BackendUnavailableError(DeviceError):
    """An optional backend's package is not installed."""


class EventFormatError(FoveateError):
    """An event file is malformed (message names file, byte offset or event index)."""
