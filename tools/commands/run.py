"""``foveate run``: the search loop on a rig; writes summary.json, pictures and an optional recording."""

from __future__ import annotations

import json
import math
from pathlib import Path

from foveate.system.errors import FoveateError

NAME = "run"
HELP = "run the search loop on the rig (default: the embedded simulated rig); write summary.json and pictures"
DESCRIPTION = (
    "Runs the search system (PPM probability search, or the raster / random baselines) on a rig for a "
    "given clock time and writes OUT/summary.json (frames, search fps, per-stage latency percentiles, drops, "
    "overruns; on the twin also targets found, time to first detection and recall over time), "
    "OUT/overview.png (the PPM over the wide view with the search path and tracks), OUT/recall.png and "
    "OUT/search.gif. With --record DIR every stream is recorded (replay it with 'foveate replay DIR'). "
    "However the run ends (its end, Ctrl-C, SIGTERM, an error), lasers are switched off, galvos parked and the "
    "recording closed, and OUT/shutdown.json says what the devices reported afterwards; device faults and "
    "their recovery are in summary.json under 'faults' (docs/reliability.md)."
)


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="RIG", help="rig YAML file (default: the embedded simulated rig)")
    p.add_argument("--seconds", type=float, default=2.0, help="rig-clock seconds to run (default: 2)")
    p.add_argument("--out", type=Path, default=Path("out/run"), help="output folder (default: out/run)")
    p.add_argument("--loop", choices=("ppm", "raster", "random"), default="ppm",
                   help="planner: PPM probability search (default) or a baseline")
    p.add_argument("--record", type=Path, metavar="DIR", help="record every stream into DIR (crash-safe chunks)")
    p.add_argument("--force", action="store_true", help="overwrite an existing recording in --record DIR")
    p.add_argument("--realtime", action="store_true",
                   help="run a simulated rig on the wall clock (default: as fast as possible on simulated time)")
    p.add_argument("--show", action="store_true", help="open a live window (needs a desktop OpenCV build)")
    p.add_argument("--seed", type=int, default=None, help="planner seed (default: search.seed of the rig file)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_observers(rig, loop_kind: str, out: Path | None, record: Path | None = None, force: bool = False,
                    show: bool = False, gif: bool = True):
    """Evaluation (on the twin), pictures, recording and the live window for one run."""
    from foveate.system.search.report import Snapshotter

    observers, evaluator, snap, recorder = [], None, None, None
    if "sim.twin" in rig.context.shared:
        from foveate.hardware.sim.oracle import TwinGroundTruth
        from foveate.hardware.sim.scene import CLASSES
        from foveate.system.search.evaluation import Evaluator

        evaluator = Evaluator(TwinGroundTruth(rig), {c: i for i, c in enumerate(CLASSES)})
        observers.append(evaluator)
    if out is not None and gif:
        snap = Snapshotter()
        observers.append(snap)
    if record is not None:
        from foveate.system.search.recorder import Recorder

        recorder = Recorder(record, rig.config, force=force, loop=loop_kind)
        observers.append(recorder)
    if show:
        from foveate.system.search.report import LiveWindow

        observers.append(LiveWindow())
    return observers, evaluator, snap, recorder


def check_outputs(out: Path, record: Path | None, force: bool) -> None:
    """Before anything runs: --out never goes into a recording, --record never overwrites without --force."""
    from foveate.system.search.recorder import RecordingError, check_not_in_recording, check_recording_target

    check_not_in_recording(out, "--out")
    if record is not None:
        o, r = out.absolute(), record.absolute()
        if o == r or r in o.parents:
            raise RecordingError(f"--out {out} lies in --record {record}: a recording holds only recorded data; "
                                 "choose separate folders")
        check_recording_target(record, force)
    try:  # now, not after the run
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FoveateError(f"--out {out}: cannot create the output folder: {exc.strerror}") from None


def run(args) -> int:
    from foveate.system.clock import MonotonicClock
    from foveate.system.config import load_rig
    from foveate.system.rig import Rig
    from foveate.system.safety import check_slew, shutdown_guard, terminate_on_sigterm
    from foveate.system.search.report import write_outputs
    from foveate.system.search.scheduler import SearchLoop

    if not (args.seconds > 0 and math.isfinite(args.seconds)):
        raise FoveateError(f"--seconds must be a finite number > 0, got {args.seconds}")
    check_outputs(args.out, args.record, args.force)
    cfg = load_rig(args.config)
    rig = Rig(cfg, clock=MonotonicClock() if args.realtime else None)
    with terminate_on_sigterm(), rig:
        check_slew(rig)
        observers, evaluator, snap, recorder = build_observers(rig, args.loop, args.out, args.record, args.force, args.show)
        loop = SearchLoop(rig, args.loop, observers=observers, seed=args.seed)
        # Whatever ends the run (its end, Ctrl-C, SIGTERM, an error): lasers off, galvos parked, recording closed.
        with shutdown_guard(rig, [recorder], args.out):
            loop.run(args.seconds, progress=not args.no_progress)
        evaluation = evaluator.summary(args.seconds) if evaluator is not None else None
        summary, pictures = write_outputs(loop, args.out, evaluation, snap)
    keys = ("loop", "rig", "detector", "segmenter", "sim_seconds", "wall_seconds", "frames", "search_fps",
            "search_fps_wall", "overruns")
    short = {k: summary[k] for k in keys}
    if summary["faults"]["count"]:
        short["faults"] = [f"{r['device']}: {r['kind']} at {r['t_detect_s']:.3f} s, recovered at {r['t_recover_s']} s"
                           for r in summary["faults"]["records"][:10]]  # all of them: summary.json, the log
    if summary.get("model_notes"):
        short["model_notes"] = summary["model_notes"]  # e.g. the twin's oracle segmenter standing in for SLTNet
    if evaluation is not None:
        short.update({k: evaluation[k] for k in ("targets_total", "targets_found", "mean_ttfd_s", "recall_found_at_1s")})
    print(json.dumps(short, indent=2))
    print(f"wrote {args.out / 'summary.json'}")
    for p in pictures:
        print(f"wrote {p}")
    if recorder is not None:
        print(f"recorded {recorder.chunks_written} chunks into {args.record}")
    return 0
