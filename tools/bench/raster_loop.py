"""Raster loop on the simulated rig in fast mode: search frames per second of wall time."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from foveate.system.raster_run import run_raster
from foveate.system.rig import Rig
from foveate.tools.bench.common import Row

NAME = "raster"
DESCRIPTION = "raster sweep on the embedded simulated rig (fast mode): loop throughput"


def run(quick: bool = False) -> list[Row]:
    seconds = 0.3 if quick else 1.0
    with tempfile.TemporaryDirectory() as d, Rig.from_file(None) as rig:
        t0 = time.perf_counter()
        res = run_raster(rig, seconds, Path(d), progress=False)
        wall = time.perf_counter() - t0
    s = res.summary
    return [
        Row(NAME, "search frames per wall second", round(s["search_frames"] / wall, 1), "frames/s",
            goal="twin never the bottleneck of a 500 fps loop"),
        Row(NAME, "sim-time search rate", s["search_fps_sim"], "frames/s (sim)"),
    ]
