"""Lazy imports of optional vendor packages, with one clear error when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from foveate.system.errors import BackendUnavailableError


def require(module: str, package: str, backend: str, hint: str = "") -> ModuleType:
    """Import ``module`` or raise ``BackendUnavailableError`` naming the pip package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = f"; {hint}" if hint else ""
        raise BackendUnavailableError(
            f"backend '{backend}' needs the Python package '{package}' (import {module} failed: {exc}). "
            f"Install it with: pip install {package}{extra}"
        ) from None
