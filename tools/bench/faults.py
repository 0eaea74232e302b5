"""Reliability: every injected fault on the twin, what the system did, measured; writes docs/reliability.md.

Each scenario builds a fresh ``sim_search_serial`` rig (twin cameras; galvo and
laser through the real serial driver to the simulated controller), gives the
controller the rig's safety envelope (it logs any out-of-envelope command or
laser-on), injects one fault (``foveate.hardware.sim.faults``), runs the PPM
search loop on the simulated clock while recording every stream, and measures:

* detection: when the loop first noticed the fault (its health records);
* recovery: from the end of the fault (its instant for a restart) to the
  loop's first good read or command of the failed device, and until the
  search frame rate is back (the first search frame after the fault);
* frames lost: search frames the loop would have taken at its rate before
  the fault minus those it took, from the fault's start to its recovery;
* bytes lost on the wire (serial faults) and recorded data lost (the
  recording's search frames and event packets against what the loop saw;
  every chunk's checksum verified);
* envelope violations logged by the simulated controller.

Plus an overload run (a detector five times slower than the camera), a laser
run (the interlock, and the controller's watchdog when the host goes silent
with the laser on) and a soak (10 minutes of simulated time in fast mode,
memory sampled). Times are simulated seconds (deterministic for a seed);
wall times depend on the machine.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foveate.tools.bench.common import Row, machine

NAME = "faults"
DESCRIPTION = "every injected fault on the twin: recovery, frames and bytes lost, envelope violations, soak memory; writes docs/reliability.md"

RECOVERY_GOAL_S = 1.0
T_FAULT_S = 0.3  # faults start here (after the loop has found its pace)
TAIL_S = 0.6  # the run goes on this long after the fault ends
SOAK_S = 600.0
SOAK_FLAT_MB = 8.0  # memory in the second half of the soak stays within this band


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: object  # FaultSpec
    expected: str  # what the system should do


def scenarios():
    from foveate.hardware.sim.faults import FaultSpec as F

    t = T_FAULT_S
    return [
        Scenario("search camera stops delivering (0.3 s)", F("camera.stall", "search", t, 0.3),
                 "read times out (0.1 s), frame skipped; after 3 timeouts in a row the camera is reconnected with back-off"),
        Scenario("search camera late frames (+50 ms, 0.3 s)", F("camera.late", "search", t, 0.3, 0.05),
                 "late search frames dropped (the mirror has moved on), counted"),
        Scenario("search camera duplicated frames (0.3 s)", F("camera.duplicate", "search", t, 0.3),
                 "repeated frames (same seq and time) dropped, counted"),
        Scenario("search camera disconnect (0.3 s)", F("camera.disconnect", "search", t, 0.3),
                 "marked down, map keeps refreshing, reconnect with back-off 20 ms x2 up to 250 ms"),
        Scenario("wide camera disconnect (0.3 s)", F("camera.disconnect", "wide", t, 0.3),
                 "search goes on (the map uses events), wide camera reconnected with back-off"),
        Scenario("event burst 10x (0.3 s)", F("events.burst", "wide_events", t, 0.3, 10.0),
                 "burst detected (> 4x the running rate), thinned to 4x for the map, recorded whole"),
        Scenario("event gap (0.3 s)", F("events.gap", "wide_events", t, 0.3),
                 "empty packets where events were expected: the map keeps its last segmentation"),
        Scenario("serial bit errors (BER 1e-4, 0.3 s)", F("serial.bit_errors", "galvo", t, 0.3, 1e-4),
                 "CRC failures retried (same SEQ: never executed twice)"),
        Scenario("serial dropped bytes (0.5 %, 0.3 s)", F("serial.drop_bytes", "galvo", t, 0.3, 5e-3),
                 "partial frames time out and are retried; a command failing every retry marks the galvo down, then re-home"),
        Scenario("controller reset mid-run", F("serial.reset", "galvo", t),
                 "next move refused (RESET latched), galvo re-homed (configure, park, settle) at once"),
        Scenario("unplug and re-plug (0.3 s, controller restarts)", F("serial.unplug", "galvo", t, 0.3, 1.0),
                 "I/O fails, galvo down, map keeps refreshing; the controller's watchdog parks the mirror; "
                 "port reopened with back-off, galvo re-homed"),
    ]


# ----------------------------------------------------------------------------- rigs
def rig_config(limits_deg=((-6.0, 6.0), (-4.0, 4.0)), search_px: int = 256, search_exposure_s: float = 0.001,
               events_wh=(160, 120), detect: dict | None = None, source: str = "auto", wide_wh=(320, 240),
               wide_hz: float | None = None, refresh_hz: float | None = None):
    """The ``sim_search_serial`` rig with a smaller mirror range (fewer scene tiles to render: faster)."""
    from foveate.system.config import default_rig_path, parse_rig, read_yaml

    path = default_rig_path().with_name("sim_search_serial.yaml")
    data = read_yaml(path)
    g = data["devices"]["galvo"]["settings"]
    g["limits_deg"] = [list(a) for a in limits_deg]
    s = data["devices"]["search"]["settings"]
    s.update(width=search_px, height=search_px, hfov_deg=2.56 * search_px / 256, exposure_s=search_exposure_s)
    data["devices"]["wide_events"]["settings"].update(width=events_wh[0], height=events_wh[1])
    data["devices"]["wide"]["settings"].update(width=wide_wh[0], height=wide_wh[1])
    search = data.setdefault("search", {})
    sched = search.setdefault("scheduler", {})
    if detect:
        sched["detect"] = detect
    if wide_hz:
        sched["wide_hz"] = wide_hz
    if source != "auto":
        search.setdefault("ppm", {})["source"] = source
    if refresh_hz:
        search.setdefault("ppm", {})["refresh_hz"] = refresh_hz
    kx = min(5.0, 0.75 * limits_deg[0][1]), min(3.0, 0.75 * limits_deg[1][1])  # a zone inside the mirror's range
    data["safety"]["laser_keep_in_deg"] = [[-kx[0], kx[0]], [-kx[1], kx[1]]]
    return parse_rig(data, source=str(path), rig_dir=path.parent)


def controller_of(rig):
    g = rig.devices["galvo"]
    port = g.link.port or g.link._reopen
    return port, port.controller


def arm_envelope(rig):
    """Give the simulated controller the rig's envelope (its own check, independent of the host's)."""
    from foveate.hardware.sim.galvo_controller import SafetyEnvelope

    g = rig.devices["galvo"]
    _, ctl = controller_of(rig)
    s = rig.config.safety
    ctl.envelope = SafetyEnvelope(limits_deg=g.limits_deg, max_slew_deg_s=s.max_slew_deg_s,
                                  laser_keep_in_deg=s.laser_keep_in_deg)
    return ctl


class FrameLog:
    """Observer: clock times of the search frames the loop accepted."""

    def __init__(self) -> None:
        self.t_ns: list[int] = []
        self.packets = 0

    def on_start(self, loop) -> None: ...
    def on_wide_frame(self, frame) -> None: ...
    def on_events(self, packet) -> None:
        self.packets += 1
    def on_segmentation(self, *a) -> None: ...
    def on_command(self, *a) -> None: ...
    def on_frame(self, frame, state, view) -> None:
        self.t_ns.append(frame.t_ns)
    def on_detections(self, *a) -> None: ...
    def on_tick(self, *a) -> None: ...
    def on_end(self, loop) -> None: ...


@dataclass
class Result:
    name: str
    expected: str
    did: str = ""
    detect_s: float | None = None
    recovery_s: float | None = None  # device back (first good read/command) after the fault ended
    resume_s: float | None = None  # first search frame after the fault ended
    frames_lost: int = 0
    bytes_lost: int = 0
    recorded_lost: int = 0
    violations: int = 0
    extra: dict = field(default_factory=dict)
    passed: bool = True


def run_fault(scenario: Scenario, seconds_after: float = TAIL_S, record: bool = True, seed: int = 0,
              cfg=None) -> tuple[Result, dict]:
    """One scenario on a fresh rig; returns the measured result and the loop's summary."""
    from foveate.hardware.sim.faults import inject_faults
    from foveate.system.rig import Rig
    from foveate.system.search.recorder import Recorder, Recording
    from foveate.system.search.scheduler import SearchLoop

    spec = scenario.fault
    cfg = cfg or rig_config()
    t_end = spec.t1_ns * 1e-9 if spec.duration_s else spec.t_s
    log = FrameLog()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="foveate-faults-")))
        rig = stack.enter_context(Rig(cfg))
        ctl = arm_envelope(rig)
        inject_faults(rig, [spec], seed=seed)
        recorder = Recorder(tmp / "rec", cfg, loop="ppm") if record else None
        observers = [log] + ([recorder] if recorder else [])
        loop = SearchLoop(rig, "ppm", observers=observers, seed=seed)
        try:
            summary = loop.run(t_end + seconds_after - rig.clock.now_s())
        finally:
            if recorder is not None:
                recorder.close()
        port, ctl = controller_of(rig)
        wire = dict(port.wire)
        link = dict(rig.devices["galvo"].link.counters)
        violations = list(ctl.violations)
        history = list(ctl.history)
        recorded = None
        if recorder is not None:
            rec = Recording(tmp / "rec")
            recorded = {"counts": rec.counts(), "problems": list(rec.problems), "closed": rec.closed,
                        "chunks": len(rec.chunks)}
    res = measure(scenario, summary, log, wire, link, violations, recorded)
    res.extra["history"] = history
    return res, summary


def measure(scenario, summary, log: FrameLog, wire, link, violations, recorded) -> Result:
    spec = scenario.fault
    t0 = spec.t_s
    t1 = spec.t1_ns * 1e-9 if spec.duration_s else t0
    faults = summary["faults"]
    recs = [r for r in faults["records"] if r["t_detect_s"] >= t0 - 1e-9]
    res = Result(scenario.name, scenario.expected)
    res.violations = len(violations)
    frames = np.array(log.t_ns, dtype=np.int64) * 1e-9
    # the loop's pace before the fault
    before = frames[(frames >= 0.1) & (frames < t0)]
    rate = (len(before) - 1) / (before[-1] - before[0]) if len(before) > 2 else float("nan")
    if recs:
        res.detect_s = round(min(r["t_detect_s"] for r in recs) - t0, 6)
        backs = [r["t_recover_s"] for r in recs]
        t_back = max([t1] + [b for b in backs if b is not None])
    else:
        backs, t_back = [], t1
    t_back = max(t_back, t0 + 1e-9)
    after = frames[frames >= t_back]
    res.resume_s = round(float(after[0] - t1), 6) if len(after) else None
    if recs:
        res.recovery_s = None if any(b is None for b in backs) else round(max(0.0, max(backs) - t1), 6)
    else:  # absorbed below the loop (retries): back when the search frames come again after the fault
        res.recovery_s = res.resume_s
    # the longest the search waited for a frame while the fault lasted (e.g. retries on a noisy wire)
    last_before = frames[frames < t0][-1:]  # the wait starts at the last frame before the fault
    inside = np.concatenate([last_before, frames[(frames >= t0) & (frames <= t_back + 0.05)]])
    gap = float(np.max(np.diff(inside))) if len(inside) > 1 else float("nan")
    res.extra["longest_frame_gap_s"] = round(gap, 6)
    if math.isfinite(rate):
        n_in = int(((frames >= t0) & (frames < t_back)).sum())
        res.frames_lost = max(0, int(round(rate * (t_back - t0))) - n_in)
    res.bytes_lost = int(wire.get("bytes_lost", 0))
    res.extra.update({"rate_fps": round(rate, 1), "records": recs, "wire": wire, "link": link,
                      "faults_frames_lost": faults["frames_lost"], "devices": faults["devices"],
                      "drops": summary["drops"], "frames": summary["frames"]})
    if recorded is not None:
        c = recorded["counts"]
        lost = abs(c.get("search", 0) - len(log.t_ns)) + abs(c.get("events", 0) - log.packets)
        res.recorded_lost = lost + (0 if recorded["closed"] and not recorded["problems"] else 1)
        res.extra["recorded"] = recorded
    kinds = sorted({f"{r['device']}: {r['kind']}" for r in recs})
    res.did = "; ".join(kinds) if kinds else "absorbed (no fault reached the loop)"
    if link.get("retries"):
        res.did += f"; {link['retries']} retries, {link.get('crc_errors', 0)} CRC errors, {link.get('timeouts', 0)} timeouts"
    if wire.get("bits_flipped"):
        res.did += f"; {wire['bits_flipped']} bits flipped"
    if np.isfinite(gap) and gap > 0:
        res.did += f"; longest wait for a search frame {gap * 1e3:.0f} ms"
    res.passed = (res.recovery_s is not None and res.recovery_s < RECOVERY_GOAL_S and res.violations == 0
                  and res.recorded_lost == 0)
    return res


# ----------------------------------------------------------------------------- overload, laser, soak
def run_overload(seconds: float = 1.0, seed: int = 0, **rig_kw) -> Result:
    """A detector five times slower than the camera: newest-wins drops, counters, recordings complete."""
    from foveate.system.rig import Rig
    from foveate.system.search.recorder import Recorder, Recording
    from foveate.system.search.scheduler import SearchLoop

    cfg = rig_config(detect={"queue": 2, "drop": "oldest", "latency_s": 0.025}, **rig_kw)
    log = FrameLog()
    with tempfile.TemporaryDirectory(prefix="foveate-overload-") as tmp, Rig(cfg) as rig:
        ctl = arm_envelope(rig)
        recorder = Recorder(Path(tmp) / "rec", cfg, loop="ppm")
        loop = SearchLoop(rig, "ppm", observers=[log, recorder], seed=seed)
        try:
            summary = loop.run(seconds)
        finally:
            recorder.close()
        rec = Recording(Path(tmp) / "rec")
        counts = rec.counts()
    st = summary["stages"]["detect"]
    res = Result("overload: detector 25 ms, camera ~5 ms/frame", "bounded queue (2), oldest waiting frame dropped "
                 "(newest wins), counted; loop keeps its pace; recordings never dropped")
    cycle_ms = summary["latency_ms"]["cycle"]["p50"]
    res.did = (f"{st['submitted']} frames to the detector, {st['dropped']} dropped by policy, {st['completed']} "
               f"detected; cycle p50 {cycle_ms:.2f} ms")
    res.frames_lost = 0
    res.recorded_lost = abs(counts.get("search", 0) - summary["frames"]) + abs(counts.get("frames_done", 0) - st["completed"])
    res.violations = len(ctl.violations)
    res.recovery_s = 0.0
    res.extra = {"detect": st, "cycle_p50_ms": cycle_ms, "e2e_p99_ms": summary["latency_ms"]["end_to_end"]["p99"]}
    res.passed = res.recorded_lost == 0 and res.violations == 0 and st["dropped"] > 0 and st["pending"] <= 2
    return res


def run_laser(silent_s: float = 0.4) -> Result:
    """Laser through the interlock; refused outside the zone; host silent (unplugged) with the laser on."""
    from foveate.hardware.sim.faults import FaultSpec, inject_faults
    from foveate.system.rig import Rig
    from foveate.system.safety import LaserInterlock, SafetyError

    cfg = rig_config()
    with Rig(cfg) as rig:
        ctl = arm_envelope(rig)
        galvo, laser = rig.devices["galvo"], rig.devices["laser"]
        il = LaserInterlock(rig)
        refused = []
        t_unplug = 0.0
        with il.hold("bench"):
            for x in np.linspace(-2.0, 2.0, 21):  # a sweep inside the zone, laser on
                il.move(float(x), 0.5)
                galvo.wait_settled(0.05)
                if not laser.is_on:
                    il.on()
            try:
                il.move(7.5 if galvo.limits_deg[0][1] > 7.5 else galvo.limits_deg[0][1], 0.0)
            except SafetyError as exc:
                refused.append(str(exc))
            il.move(1.0, 0.0)
            il.on()
            t_unplug = rig.clock.now_s() + 0.001
            inject_faults(rig, [FaultSpec("serial.unplug", "galvo", t_unplug, silent_s, 0.0)])
            rig.clock.sleep_s(silent_s + 0.01)  # the host is silent: nothing reaches the controller
            ctl.advance(rig.clock.now_ns())
            aux_on = ctl.aux[0][0]
            wd = [t for t, c in ctl.history if c == "SET_AUX"]
            parked = tuple(ctl.target) == tuple(ctl.park_codes)
            # the controller switched the laser off at its watchdog deadline
            wd_ms = ctl.watchdog_ms
            t_off = (ctl._last_rx_ns + wd_ms * 1_000_000) * 1e-9 if not aux_on else None
            galvo.recover()
            laser.off()
    res = Result("laser: interlock, and host silent with the laser on", "laser on only while held and aimed inside the "
                 "keep-in zone; a move outside with the laser on is refused (laser off first); the controller's "
                 "watchdog parks the mirror and switches the laser off when the host goes silent")
    res.violations = len(ctl.violations)
    res.recovery_s = round(t_off - (t_unplug), 6) if t_off is not None else None
    res.did = (f"{len(refused)} move refused by the interlock; watchdog ({wd_ms} ms): laser "
               f"{'off' if not aux_on else 'STILL ON'}, mirror {'parked' if parked else 'NOT parked'} "
               f"{res.recovery_s} s after the host went silent")
    res.extra = {"refused": refused, "aux_switches": len(wd)}
    res.passed = res.violations == 0 and not aux_on and parked and len(refused) == 1
    return res


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemorySampler(FrameLog):
    """Observer: resident memory (after a garbage collection) every ``every_s`` of clock time."""

    def __init__(self, every_s: float) -> None:
        super().__init__()
        self.every_ns = int(every_s * 1e9)
        self.samples: list[tuple[float, float]] = []
        self._t0 = self._next = None

    def on_tick(self, loop, t_ns: int) -> None:
        if self._t0 is None:
            self._t0, self._next = t_ns, t_ns + self.every_ns
        if t_ns >= self._next:
            gc.collect()
            self.samples.append(((t_ns - self._t0) * 1e-9, rss_mb()))
            self._next += self.every_ns


def run_soak(seconds: float = SOAK_S, sample_every_s: float = 30.0, seed: int = 0) -> Result:
    """The loop for ``seconds`` of simulated time with a detector slower than the camera; RSS sampled."""
    from foveate.system.rig import Rig
    from foveate.system.search.scheduler import SearchLoop

    # Light but complete: the whole loop (planner, tracker, map, serial galvo, detection stage) on a small mirror
    # range (the scene tiles it needs fill in the first seconds), 64 px search frames every ~100 ms, a detector
    # three times slower (overloaded all the time), the map refreshed twice a second from small wide frames.
    cfg = rig_config(limits_deg=((-3.0, 3.0), (-2.0, 2.0)), search_px=64, search_exposure_s=0.095, wide_wh=(160, 120),
                     detect={"queue": 2, "drop": "oldest", "latency_s": 0.3}, source="frames", wide_hz=2.0,
                     refresh_hz=2.0)
    sampler = MemorySampler(sample_every_s)
    t_wall = time.perf_counter()
    with Rig(cfg) as rig:
        ctl = arm_envelope(rig)
        loop = SearchLoop(rig, "ppm", observers=[sampler], seed=seed)
        s = loop.run(seconds)
    st = s["stages"]["detect"]
    total = {"frames": s["frames"], **{k: st[k] for k in ("submitted", "dropped", "completed", "pending")}}
    faults = s["faults"]
    samples = sampler.samples
    wall = time.perf_counter() - t_wall
    res = Result(f"soak: {seconds / 60:g} min simulated, detector 300 ms vs camera ~100 ms",
                 "no deadlock; bounded queues drop by policy; memory flat")
    half = [m for t, m in samples if t >= seconds / 2]
    band = max(half) - min(half) if half else float("nan")
    res.did = (f"{total['frames']} frames, {total['dropped']} of {total['submitted']} dropped by policy, "
               f"RSS {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MB (second half within {band:.1f} MB), "
               f"{wall:.0f} s wall")
    res.violations = len(ctl.violations)
    res.recovery_s = 0.0
    res.extra = {"samples": samples, "band_mb": band, "totals": total, "wall_s": wall, "faults": faults["count"]}
    res.passed = band < SOAK_FLAT_MB and res.violations == 0 and total["frames"] > 0
    return res


# ----------------------------------------------------------------------------- report
def _fmt(v, unit="s", none="not recovered"):
    if v is None:
        return none
    if isinstance(v, float):
        return f"{v:.3f} {unit}".strip()
    return str(v)


HEADER = """# Reliability

Generated by `foveate bench faults` (`tools/bench/faults.py`); do not edit by hand. Every fault is
injected into the digital twin (`foveate.hardware.sim.faults`) on the rig
`hardware/rigs/sim_search_serial.yaml` with a smaller mirror range (±6° × ±4°): twin cameras, and the
galvo and laser through the real serial driver to the simulated controller (`galvosim://`), which
checks the safety envelope on its own and logs any out-of-envelope command or laser-on. The PPM search
loop runs on the simulated clock (fast mode, deterministic for a seed) and records every stream.
How faults are handled: `system/search/health.py`; the envelope: `system/safety.py`; settings:
`reliability:` and `safety:` in [rig-config.md](rig-config.md).

Columns: **detected** = from the fault's start to the loop's first sign of it; **recovered** = from
the fault's end (a restart: its instant) to the failed device's first good read or command;
**search resumed** = from the fault's end to the first search frame after recovery (for faults the
driver absorbs with retries this is also the recovery); **frames lost** = search frames the loop
would have taken at its pace before the fault, minus those it took, up to recovery;
**bytes lost** = bytes lost on the serial wire; **recorded lost** = search frames and event packets
the loop saw but the recording lacks (every chunk's checksum verified); **violations** = the
controller's envelope log. All times are simulated seconds.
"""


def write_report(results: list[Result], path: Path, quick: bool, wall_s: float) -> Path:
    lines = [HEADER]
    lines.append(f"Run: {'`--quick` (smoke test, not the reference numbers)' if quick else 'full'}; "
                 f"machine: {machine()}; wall time {wall_s:.0f} s (wall times depend on the machine and its load; "
                 "every other figure is simulated time, the same on any machine for the same seed).\n")
    lines.append("| fault | what the system did | detected | recovered | search resumed | frames lost | bytes lost | "
                 "recorded lost | violations | pass |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        lines.append(f"| {r.name} | {r.did} | {_fmt(r.detect_s, none='—')} | {_fmt(r.recovery_s)} | "
                     f"{_fmt(r.resume_s, none='—')} | "
                     f"{r.frames_lost} | {r.bytes_lost} | {r.recorded_lost} | {r.violations} | "
                     f"{'yes' if r.passed else '**NO**'} |")
    lines.append("")
    lines.append("What each fault should make the system do:\n")
    for r in results:
        lines.append(f"- **{r.name}**: {r.expected}.")
    transient = [r for r in results if r.recovery_s is not None or r.name.startswith("search") or "serial" in r.name]
    worst = max((r.recovery_s for r in transient if r.recovery_s is not None), default=0.0)
    soak = next((r for r in results if r.name.startswith("soak")), None)
    lines.append("\n## Acceptance\n")
    checks = [
        ("recovery from every transient fault within 1 s of simulated time",
         all(r.recovery_s is not None and r.recovery_s < RECOVERY_GOAL_S for r in results),
         f"worst {worst:.3f} s"),
        ("no out-of-envelope galvo command or laser-on (the simulated controller's log)",
         all(r.violations == 0 for r in results), f"{sum(r.violations for r in results)} violations"),
        ("zero lost recorded data before the last completed chunk",
         all(r.recorded_lost == 0 for r in results), f"{sum(r.recorded_lost for r in results)} records missing"),
    ]
    if soak is not None:
        checks.append((f"flat memory in the soak (second half within {SOAK_FLAT_MB:g} MB)", soak.passed,
                       f"{soak.extra['band_mb']:.1f} MB"))
    lines.append("| check | result | measured |")
    lines.append("|---|---|---|")
    for what, ok, fig in checks:
        lines.append(f"| {what} | {'met' if ok else '**NOT MET**'} | {fig} |")
    if soak is not None:
        lines.append("\nSoak memory (RSS after a garbage collection, every 30 s of simulated time):\n")
        lines.append("| simulated s | " + " | ".join(f"{t:.0f}" for t, _ in soak.extra["samples"]) + " |")
        lines.append("|---|" + "---|" * len(soak.extra["samples"]))
        lines.append("| RSS MB | " + " | ".join(f"{m:.1f}" for _, m in soak.extra["samples"]) + " |")
    lines.append("\nRegenerate: `nice -n 19 .venv/bin/foveate bench faults` (writes this file; `--quick` writes "
                 "`out/reliability_quick.md` instead).\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def report_path(quick: bool) -> Path:
    if quick:
        return Path("out") / "reliability_quick.md"
    docs = Path(__file__).resolve().parents[2] / "docs"
    return docs / "reliability.md" if docs.is_dir() else Path("reliability.md")


def run(quick: bool = False) -> list[Row]:
    t0 = time.perf_counter()
    results = []
    for sc in scenarios():
        res, _ = run_fault(sc, seconds_after=0.4 if quick else TAIL_S)
        results.append(res)
    results.append(run_overload(0.5 if quick else 1.0))
    results.append(run_laser())
    results.append(run_soak(60.0 if quick else SOAK_S))
    path = write_report(results, report_path(quick), quick, time.perf_counter() - t0)
    rows = []
    for r in results:
        rows.append(Row(NAME, f"{r.name}: recovery", r.recovery_s if r.recovery_s is not None else float("inf"), "s",
                        goal=f"< {RECOVERY_GOAL_S:g} s"))
        rows.append(Row(NAME, f"{r.name}: frames lost", r.frames_lost, "frames"))
        rows.append(Row(NAME, f"{r.name}: envelope violations", r.violations, "count", goal="0"))
    rows.append(Row(NAME, f"report written to {path}", 1, "file"))
    return rows
