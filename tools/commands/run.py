"""``foveate run``: run the rig's search loop and write a summary and pictures."""

from __future__ import annotations

import json
from pathlib import Path

from foveate.system.raster_run import run_raster
from foveate.system.rig import Rig

NAME = "run"
HELP = "run the rig (default: the embedded simulated rig) and write summary.json and pictures"


def add_arguments(p) -> None:
    p.add_argument("--config", metavar="RIG", help="rig YAML file (default: the embedded simulated rig)")
    p.add_argument("--seconds", type=float, default=2.0, help="rig-clock seconds to run (default: 2)")
    p.add_argument("--out", type=Path, default=Path("out/run"), help="output folder (default: out/run)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args) -> int:
    if not args.seconds > 0:
        raise SystemExit("foveate run: error: --seconds must be > 0")
    rig = Rig.from_file(args.config)
    with rig:
        result = run_raster(rig, args.seconds, args.out, progress=not args.no_progress)
    s = result.summary
    print(json.dumps({k: s[k] for k in ("loop", "rig", "sim_seconds", "wall_seconds", "search_frames",
                                         "search_fps_wall", "wide_frames", "events")}, indent=2))
    print(f"wrote {args.out / 'summary.json'}")
    for p in result.pictures:
        print(f"wrote {p}")
    return 0
