"""The safety envelope: laser interlock, slew check, and a safe stop on Ctrl-C, SIGTERM and unhandled errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from foveate.system.errors import ConfigError
from foveate.system.rig import Rig
from foveate.system.safety import LaserInterlock, SafetyError, check_slew, safe_shutdown, shutdown_guard
from foveate.system.search.recorder import Recorder, Recording
from foveate.system.search.scheduler import SearchLoop
from foveate.tools.bench import faults as bench

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[2]


def small_rig(**kw):
    return bench.rig_config(limits_deg=((-4.0, 4.0), (-3.0, 3.0)), search_px=64, events_wh=(64, 48),
                            wide_wh=(160, 120), **kw)


def test_laser_interlock_keep_in_zone_and_hold():
    with Rig(small_rig()) as rig:
        ctl = bench.arm_envelope(rig)  # keep-in [-3, 3] x [-2.25, 2.25] (the rig's safety section)
        galvo, laser = rig.devices["galvo"], rig.devices["laser"]
        il = LaserInterlock(rig)
        assert il.keep_in_deg == ((-3.0, 3.0), (-2.25, 2.25))
        with pytest.raises(SafetyError, match="no procedure holds the interlock"):
            il.on()
        galvo.move_to(3.5, 0.0)
        with il.hold("scan"):
            with pytest.raises(SafetyError, match=r"aims at \(3.5, 0\) deg, outside the keep-in zone"):
                il.on()
            with pytest.raises(SafetyError, match="held by 'scan'"):
                with il.hold("other"):
                    pass
            il.move(1.0, 0.5)
            il.on()
            assert ctl.aux[0][0]
            il.move(-2.0, 1.0)  # inside: allowed with the laser on
            with pytest.raises(SafetyError, match="refused with the laser on.*laser switched off"):
                il.move(3.5, 0.0)
            assert not ctl.aux[0][0] and tuple(galvo.commanded_deg) == (-2.0, 1.0)  # never moved out with it on
            il.on()
        assert not ctl.aux[0][0] and not laser.is_on  # leaving the hold switches it off
        assert ctl.violations == []  # the controller's own check agrees


def test_slew_beyond_the_safety_limit_is_refused_naming_the_key():
    with Rig(small_rig()) as rig:
        check_slew(rig)  # 4 deg/ms = 4000 deg/s: within
    data = bench.rig_config().model_dump(mode="json")
    data["devices"]["galvo"]["settings"]["slew_deg_per_ms"] = 6.0
    from foveate.system.config import parse_rig

    with Rig(parse_rig(data, source="rig.yaml")) as rig:
        with pytest.raises(ConfigError, match=r"rig.yaml: devices.galvo.settings.slew_deg_per_ms: slews at 6000 deg/s, "
                                              r"above safety.max_slew_deg_s 4000"):
            check_slew(rig)


class _FailingDetector:
    """The oracle detector, failing on its ``n``-th frame (an unhandled error in the middle of a run)."""

    def __init__(self, inner, n: int) -> None:
        self.inner, self.n, self.calls = inner, n, 0
        self.classes = inner.classes

    def detect(self, image):
        self.calls += 1
        if self.calls == self.n:
            raise RuntimeError("detector crashed")
        return self.inner.detect(image)


def test_unhandled_error_parks_switches_the_laser_off_and_closes_the_recording(tmp_path):
    cfg = small_rig()
    data = cfg.model_dump(mode="json")
    data["safety"]["laser_keep_in_deg"] = [[-4.0, 4.0], [-3.0, 3.0]]  # the laser may stay on while searching
    from foveate.system.config import parse_rig
    from foveate.system.search.components import build_model

    cfg = parse_rig(data, source=cfg.source, rig_dir=cfg.rig_dir)
    with Rig(cfg) as rig:
        ctl = bench.arm_envelope(rig)
        il = LaserInterlock(rig)
        rec = Recorder(tmp_path / "rec", cfg)
        det = _FailingDetector(build_model(rig, "detector", True), 40)
        loop = SearchLoop(rig, "ppm", detector=det, observers=[rec])
        with pytest.raises(RuntimeError, match="detector crashed"):
            with shutdown_guard(rig, [rec], tmp_path / "out"), il.hold("test"):
                il.on()
                assert ctl.aux[0][0]
                loop.run(5.0)
        # what the controller itself drives now, not what the host believes
        assert not ctl.aux[0][0] and tuple(ctl.target) == ctl.park_codes and ctl.violations == []
    report = json.loads((tmp_path / "out" / "shutdown.json").read_text())
    assert report["reason"] == "error: RuntimeError: detector crashed" and report["safe"]
    assert report["galvos"]["galvo"]["parked"] and report["lasers"]["laser"]["reported_on"] is False
    r = Recording(tmp_path / "rec")
    assert r.closed and not r.problems and r.counts()["search"] >= 39


def test_safe_shutdown_reports_problems_instead_of_raising():
    with Rig(small_rig()) as rig:
        rig.devices["galvo"].link.port.attach_faults(
            bench_schedule("serial.unplug", rig.clock.now_s(), 1.0), "galvo")
        report = safe_shutdown(rig, [], "test")
    assert not report["safe"] and report["galvos"]["galvo"]["parked"] is False
    assert any("unplugged" in e for e in report["errors"])


def bench_schedule(kind, t_s, duration_s):
    from foveate.hardware.sim.faults import FaultSchedule, FaultSpec

    return FaultSchedule([FaultSpec(kind, "galvo", t_s, duration_s)])


# ----------------------------------------------------------------------------- signals, in a real process
_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from foveate.system.config import parse_rig
    from foveate.system.rig import Rig
    from foveate.system.safety import LaserInterlock, shutdown_guard, terminate_on_sigterm
    from foveate.system.search.recorder import Recorder
    from foveate.system.search.scheduler import SearchLoop
    from foveate.tools.bench import faults as bench

    out = Path(sys.argv[1])
    cfg = bench.rig_config(limits_deg=((-4.0, 4.0), (-3.0, 3.0)), search_px=64, events_wh=(64, 48), wide_wh=(160, 120))
    data = cfg.model_dump(mode="json")
    data["safety"]["laser_keep_in_deg"] = [[-4.0, 4.0], [-3.0, 3.0]]
    cfg = parse_rig(data, source=cfg.source, rig_dir=cfg.rig_dir)
    ctl = None
    try:
        with terminate_on_sigterm(), Rig(cfg) as rig:
            ctl = bench.arm_envelope(rig)
            rec = Recorder(out / "rec", cfg)
            loop = SearchLoop(rig, "ppm", observers=[rec])
            il = LaserInterlock(rig)
            with shutdown_guard(rig, [rec], out), il.hold("test"):
                il.on()
                print("laser on", flush=True)
                loop.run(1000.0)
    finally:
        if ctl is not None:
            state = {"aux_on": ctl.aux[0][0], "target": list(ctl.target), "park": list(ctl.park_codes),
                     "violations": [v.detail for v in ctl.violations]}
            (out / "controller.json").write_text(json.dumps(state))
""")


def _wait_for_chunks(rec: Path, proc, n: int = 3, timeout_s: float = 240.0) -> None:
    t0 = time.monotonic()
    idx = rec / "index.jsonl"
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise AssertionError(f"the process ended early: {proc.communicate()}")
        if idx.is_file() and idx.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.2)
    raise AssertionError("the run did not start recording in time")


@pytest.mark.slow
@pytest.mark.parametrize("sig, reason", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_signal_with_the_laser_on_stops_safely(tmp_path, sig, reason):
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_chunks(tmp_path / "rec", proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "laser on" in out
    assert proc.returncode != 0 and ("KeyboardInterrupt" in err or "Terminated" in err), err
    ctl = json.loads((tmp_path / "controller.json").read_text())
    assert ctl["aux_on"] is False and ctl["target"] == ctl["park"] and ctl["violations"] == []
    report = json.loads((tmp_path / "shutdown.json").read_text())
    assert report["reason"] == reason and report["safe"]
    r = Recording(tmp_path / "rec")
    assert r.closed and not r.problems and len(r.chunks) >= 3


@pytest.mark.slow
def test_foveate_run_sigterm_exits_143_with_a_closed_recording(tmp_path):
    cmd = [sys.executable, "-m", "foveate.tools.cli", "run", "--config", str(REPO / "hardware/rigs/sim_search_serial.yaml"),
           "--seconds", "1000", "--out", str(tmp_path / "out"), "--record", str(tmp_path / "rec"), "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_chunks(tmp_path / "rec", proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert "foveate: terminated" in err
    report = json.loads((tmp_path / "out" / "shutdown.json").read_text())
    assert report["reason"] == "terminated" and report["safe"]
    assert report["galvos"]["galvo"]["parked"] and report["lasers"]["laser"]["reported_on"] is False
    r = Recording(tmp_path / "rec")
    assert r.closed and not r.problems and r.counts()["search"] > 0


def test_scan_procedure_lights_the_laser_only_inside_the_keep_in_zone():
    import numpy as np
    from importlib import resources

    import yaml

    from foveate.system.config import parse_rig
    from foveate.system.light_section.scan import ScanSettings, plan_scan, run_scan
    from foveate.system.light_section.stripe import StripeParams
    from foveate.system.light_section.triangulate import Triangulator

    data = yaml.safe_load((resources.files("foveate.hardware") / "rigs" / "sim_light_section.yaml").read_text())
    data["devices"]["scan_camera"]["settings"].update(width=160, height=128)
    with Rig(parse_rig(data, "test")) as rig:
        twin = rig.context.shared["sim.twin"]
        tri = Triangulator(twin.galvo_camera("scan_camera"), twin.scene.true_laser_model(twin))
        settings = ScanSettings(stripe_spacing_mm=12.0, max_views=1, stripe=StripeParams(axis="rows"))
        plan = plan_scan(tri, settings, rig.role("scan_galvo").limits_deg, rig.role("laser_galvo").limits_deg[0])
        sweep = plan[0].laser_deg
        mid = float(np.median(sweep))
        zone = ((min(sweep) - 0.01, mid), (-1.0, 1.0))  # only half of the sweep may be lit
        rig.config.safety = rig.config.safety.model_copy(update={"laser_keep_in_deg": zone})
        laser, lg = rig.role("laser"), rig.role("laser_galvo")
        lit = []  # (x, y) of every laser-galvo command made while the laser was on
        move = lg.move_to
        lg.move_to = lambda x, y: (lit.append((x, y)) if laser.is_on else None, move(x, y))[1]
        res = run_scan(rig, tri, plan, settings, progress=False)
    assert res.stats["outside_keep_in"] == int(np.sum(sweep > mid)) > 0
    assert lit and all(zone[0][0] <= x <= zone[0][1] and zone[1][0] <= y <= zone[1][1] for x, y in lit)
    log = twin.devices["laser"].switch_log
    assert log[0][1] is True and log[-1][1] is False  # on for the sweep, off at the end
