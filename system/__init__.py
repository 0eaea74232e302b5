"""The real-time core of foveate: clock, core types, rig config, run loop."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("foveate")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
