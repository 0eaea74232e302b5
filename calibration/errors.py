"""Errors of calibration procedures (bad captures, unusable data)."""

from foveate.system.errors import FoveateError


class CalibrationError(FoveateError):
    """Captures or calibration data cannot give a trustworthy result (message names the file or what is missing)."""
