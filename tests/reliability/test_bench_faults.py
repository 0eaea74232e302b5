"""``foveate bench faults``: covers every fault kind, measures the laser watchdog, writes the report."""

from __future__ import annotations

import pytest

from foveate.hardware.sim.faults import FAULT_KINDS
from foveate.tools.bench import faults as bench

pytestmark = pytest.mark.timeout(300)


def test_the_benchmark_runs_every_fault_kind():
    assert {sc.fault.kind for sc in bench.scenarios()} == set(FAULT_KINDS)
    from foveate.tools.commands.bench import _benchmarks

    assert "faults" in _benchmarks()


def test_laser_is_switched_off_by_the_watchdog_when_the_host_goes_silent():
    res = bench.run_laser()
    assert res.passed, res.did
    # the controller's watchdog (250 ms) acted, measured from the last frame it received
    assert 0.24 < res.recovery_s <= 0.2501
    assert res.violations == 0 and len(res.extra["refused"]) == 1


def _result(name, recovery_s, violations=0, recorded_lost=0):
    r = bench.Result(name, "expected behaviour", did="did something", detect_s=0.001, recovery_s=recovery_s,
                     resume_s=recovery_s, frames_lost=3, bytes_lost=2, recorded_lost=recorded_lost, violations=violations)
    r.passed = recovery_s is not None and recovery_s < 1 and violations == 0 and recorded_lost == 0
    return r


def test_report_table_and_acceptance(tmp_path):
    ok = [_result("fault A", 0.05), _result("fault B", 0.2)]
    path = bench.write_report(ok, tmp_path / "reliability.md", quick=True, wall_s=12.0)
    text = path.read_text()
    assert "| fault A | did something | 0.001 s | 0.050 s | 0.050 s | 3 | 2 | 0 | 0 | yes |" in text
    assert "| recovery from every transient fault within 1 s of simulated time | met | worst 0.200 s |" in text
    assert "`--quick` (smoke test" in text
    bad = ok + [_result("fault C", None), _result("fault D", 0.1, violations=2, recorded_lost=1)]
    text = bench.write_report(bad, tmp_path / "r2.md", quick=False, wall_s=1.0).read_text()
    assert "| fault C | did something | 0.001 s | not recovered |" in text and "**NO** |" in text
    assert "within 1 s of simulated time | **NOT MET**" in text
    assert "laser-on (the simulated controller's log) | **NOT MET** | 2 violations |" in text
    assert "before the last completed chunk | **NOT MET** | 1 records missing |" in text
