"""The search loop under injected faults: it notices each, keeps searching, recovers, reports, stays in the envelope."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from foveate.hardware.sim.faults import FaultSpec, inject_faults
from foveate.system.rig import Rig
from foveate.system.search.recorder import Recorder, Recording
from foveate.system.search.scheduler import SearchLoop
from foveate.tools.bench import faults as bench

pytestmark = pytest.mark.timeout(600)


def small_rig():
    return bench.rig_config(limits_deg=((-4.0, 4.0), (-3.0, 3.0)), search_px=64, events_wh=(64, 48), wide_wh=(160, 120))


def test_controller_reset_mid_run_is_followed_by_a_rehome_and_the_search_goes_on():
    sc = bench.Scenario("reset", FaultSpec("serial.reset", "galvo", 0.2), "")
    res, summary = bench.run_fault(sc, seconds_after=0.2, cfg=small_rig())
    rec = res.extra["records"]
    assert [(r["device"], r["kind"]) for r in rec] == [("galvo", "reset")]
    assert summary["faults"]["open"] == 0 and res.recovery_s < 0.05  # re-homed at once, measured
    after = [c for t, c in res.extra["history"] if t >= 200_000_000]
    assert after[0] == "<power cycle>"
    first_move = after.index("SET_POSITION")  # the refused one (RESET latched)
    rehome = after[first_move + 1:]
    assert rehome.index("CLEAR_FAULTS") < rehome.index("SET_LIMITS") < rehome.index("SET_SLEW") < rehome.index("PARK")
    assert rehome.index("PARK") < rehome.index("SET_POSITION")  # parked before searching again
    assert res.violations == 0 and res.recorded_lost == 0
    assert res.resume_s is not None and res.resume_s < 0.05


@pytest.mark.slow
def test_every_fault_in_one_run_is_detected_recovered_reported_and_safe(tmp_path, caplog):
    faults = [
        FaultSpec("camera.stall", "search", 0.20, 0.20),
        FaultSpec("serial.reset", "galvo", 0.60),
        FaultSpec("events.burst", "wide_events", 0.80, 0.10, 10.0),
        FaultSpec("camera.duplicate", "search", 1.00, 0.10),
        FaultSpec("serial.unplug", "galvo", 1.20, 0.20, 1.0),
        FaultSpec("camera.disconnect", "wide", 1.50, 0.10),
        FaultSpec("camera.late", "search", 1.70, 0.10, 0.05),
        FaultSpec("events.gap", "wide_events", 1.90, 0.20),
        FaultSpec("serial.drop_bytes", "galvo", 2.20, 0.20, 5e-3),
    ]
    cfg = small_rig()
    log = bench.FrameLog()
    caplog.set_level(logging.WARNING, logger="foveate.system.search.health")
    with Rig(cfg) as rig:
        ctl = bench.arm_envelope(rig)
        inject_faults(rig, faults)
        recorder = Recorder(tmp_path / "rec", cfg)
        loop = SearchLoop(rig, "ppm", observers=[log, recorder])
        try:
            s = loop.run(2.8 - rig.clock.now_s())
        finally:
            recorder.close()
        assert ctl.violations == []  # never an out-of-envelope command, never the laser on
    recs = s["faults"]["records"]
    assert s["faults"]["open"] == 0
    frames = np.array(log.t_ns) * 1e-9
    expect = {"camera.stall": ("search", "stall"), "serial.reset": ("galvo", "reset"),
              "events.burst": ("wide_events", "burst"), "camera.duplicate": ("search", "duplicate"),
              "serial.unplug": ("galvo", "link"), "camera.disconnect": ("wide", "disconnect"),
              "camera.late": ("search", "late"), "events.gap": ("wide_events", "gap")}
    for f in faults:
        t1 = f.t_s + f.duration_s
        if f.kind == "serial.drop_bytes":  # absorbed by retries, or a galvo fault recovered like the others
            assert s["faults"]["devices"].get("galvo", {}).get("up", True)
            continue
        dev, kind = expect[f.kind]
        mine = [r for r in recs if r["device"] == dev and r["kind"] == kind and f.t_s - 1e-6 <= r["t_detect_s"] <= t1 + 0.2]
        assert mine, f"{f.kind}: not detected; records: {recs}"
        recovery = max(r["t_recover_s"] for r in mine) - t1
        assert recovery < 1.0, f"{f.kind}: recovered {recovery:.3f} s after the fault"
        assert np.any((frames > max(t1, max(r["t_recover_s"] for r in mine))) & (frames < t1 + 1.0)), \
            f"{f.kind}: the search did not resume"
    # the loop kept mapping while the galvo was unplugged, and searched again afterwards
    assert len(frames[frames > 2.5]) > 10
    # recordings: every search frame and event packet the loop saw, every chunk intact
    r = Recording(tmp_path / "rec")
    assert r.closed and not r.problems
    assert r.counts()["search"] == len(log.t_ns) and r.counts()["events"] == log.packets
    # the log says what happened
    text = caplog.text
    assert "galvo: reset at t=" in text and "recovered from reset" in text and "search: stall at t=" in text


@pytest.mark.slow
def test_rig_file_faults_through_foveate_run(tmp_path, capsys):
    """``sim.faults`` in a rig file reach the twin's cameras and the simulated controller; the run reports them."""
    import json

    import yaml

    from foveate.tools.cli import main

    data = small_rig().model_dump(mode="json")
    data["sim"]["faults"] = [{"kind": "serial.reset", "device": "galvo", "t_s": 0.1},
                             {"kind": "camera.disconnect", "device": "search", "t_s": 0.2, "duration_s": 0.05}]
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(data))
    assert main(["run", "--config", str(rig), "--seconds", "0.4", "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    kinds = [(r["device"], r["kind"]) for r in summary["faults"]["records"]]
    assert ("galvo", "reset") in kinds and ("search", "disconnect") in kinds and summary["faults"]["open"] == 0
    assert "galvo: reset at 0.1" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "shutdown.json").read_text())["safe"]
