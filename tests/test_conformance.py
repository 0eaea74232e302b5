"""Every device of the rig (default: the simulated rig; or ``--rig RIG``) passes its interface's suite."""

import pytest

from foveate.drivers.testing.conformance import (
    EventCameraConformance,
    FrameCameraConformance,
    GalvoConformance,
    LineLaserConformance,
)
from foveate.system.rig import Rig


@pytest.fixture
def device(rig_config, device_name):
    rig = Rig(rig_config)
    yield rig.devices[device_name]
    rig.close()


class TestFrameCameras(FrameCameraConformance):
    pass


class TestEventCameras(EventCameraConformance):
    pass


class TestGalvos(GalvoConformance):
    pass


class TestLineLasers(LineLaserConformance):
    pass
