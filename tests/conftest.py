"""Shared pytest set-up: ``--rig RIG`` points the conformance suites at a real rig file."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Property tests and fuzzers are deterministic in CI: derandomized, no example database, no
# deadline on a shared machine. HYPOTHESIS_PROFILE=fuzz-long explores far more inputs locally.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("fuzz-long", parent=settings.get_profile("ci"), derandomize=False, max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption(
        "--rig",
        default=None,
        metavar="RIG",
        help="rig YAML whose devices the conformance suites test (default: the embedded simulated rig)",
    )


def _rig_config(config):
    from foveate.system.config import load_rig

    return load_rig(config.getoption("--rig"))


def pytest_generate_tests(metafunc):
    if "device_name" in metafunc.fixturenames:
        kind = metafunc.cls.interface.kind
        cfg = _rig_config(metafunc.config)
        names = [n for n, d in cfg.devices.items() if d.kind == kind]
        metafunc.parametrize("device_name", names or [pytest.param(None, marks=pytest.mark.skip(f"rig has no {kind}"))])


@pytest.fixture
def rig_config(request):
    return _rig_config(request.config)
