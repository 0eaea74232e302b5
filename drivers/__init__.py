"""Device interfaces (abstract base classes) and real backends.

Public methods validate and convert, then call the backend's ``_do_*``.
"""

from foveate.drivers.device import Device
from foveate.drivers.event_camera import EventCamera
from foveate.drivers.frame_camera import FrameCamera
from foveate.drivers.galvo import Galvo
from foveate.drivers.line_laser import LineLaser

__all__ = ["Device", "EventCamera", "FrameCamera", "Galvo", "LineLaser"]
